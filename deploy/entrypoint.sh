#!/bin/sh
# The container's entrypoint: runs the command (the daemon) as PUID:PGID with the data
# directory ($CLEARSKIES_HOME, /data) owned by that user, the file mode mask UMASK and the
# time zone TZ. Started as root only to set this up; the daemon itself never runs as root.
# Started as another user (docker run --user), it applies UMASK and TZ and runs the command.
#
#   PUID, PGID  the user and group (numbers; default 1000:1000; never 0)
#   UMASK       octal, e.g. 022 (the default: files readable by all) or 027, 077
#   TZ          a zone of the tz database, e.g. Europe/Paris (default UTC). The daemon's own
#               log is in UTC whatever it says; TZ is for what shows local time (`date` in
#               `docker exec`, tools you run there).
# A wrong value stops the container at once with a message and exit status 64.
set -eu
PUID="${PUID:-1000}"
PGID="${PGID:-1000}"
UMASK="${UMASK:-022}"

say() { echo "clearskies-entrypoint: $*" >&2; }
fail() {
  say "$*"
  exit 64
}

case "$UMASK" in
  [0-7][0-7][0-7] | [0-7][0-7][0-7][0-7]) umask "$UMASK" ;;
  *) fail "UMASK must be an octal mask of 3 or 4 digits such as 022 or 0027, not '$UMASK'" ;;
esac
if [ -n "${TZ:-}" ]; then
  zone="${TZ#:}"
  case "$zone" in
    /* | *..* | *[!A-Za-z0-9/_+-]*) fail "TZ must name a time zone such as Europe/Paris or UTC, not '$TZ'" ;;
  esac
  # (TZDIR is where the C library looks for zones; /usr/share/zoneinfo, from tzdata.)
  [ -f "${TZDIR:-/usr/share/zoneinfo}/$zone" ] || fail "TZ=$TZ is not a time zone of the tz database (e.g. Europe/Paris, UTC)"
  export TZ
fi

if [ "$(id -u)" = 0 ]; then
  for id in "$PUID" "$PGID"; do
    case "$id" in
      "" | *[!0-9]*) fail "PUID and PGID must be numbers, not '$PUID' and '$PGID'" ;;
    esac
  done
  [ "$PUID" != 0 ] || fail "refusing to run the daemon as root (PUID=0)"
  getent group "$PGID" >/dev/null || groupadd -g "$PGID" clearskies
  getent passwd "$PUID" >/dev/null || useradd -u "$PUID" -g "$PGID" -d "$CLEARSKIES_HOME" -M -s /usr/sbin/nologin clearskies
  mkdir -p "$CLEARSKIES_HOME"
  # A data directory made for another PUID:PGID (the variables changed, or /data came from
  # elsewhere) is given, with everything in it, to this one: the daemon must be able to
  # write its index and keys. (chown -R does not follow symbolic links.) Once it belongs to
  # PUID:PGID this is skipped: a large /data is not walked at every start.
  owner="$(stat -c %u:%g "$CLEARSKIES_HOME")"
  if [ "$owner" != "$PUID:$PGID" ]; then
    say "$CLEARSKIES_HOME belongs to $owner, not to PUID:PGID $PUID:$PGID: giving it and everything in it to $PUID:$PGID"
    chown -R "$PUID:$PGID" "$CLEARSKIES_HOME"
  fi
  chmod 0700 "$CLEARSKIES_HOME"
  exec setpriv --reuid="$PUID" --regid="$PGID" --init-groups --inh-caps=-all -- "$@"
fi
exec "$@"
