#!/bin/sh
# Runs the daemon as PUID:PGID (creating that user if needed) with the data dir owned by it.
# Started as root only to set this up; the daemon itself never runs as root.
set -eu
PUID="${PUID:-1000}"
PGID="${PGID:-1000}"
if [ "$(id -u)" = 0 ]; then
  case "$PUID$PGID" in *[!0-9]*) echo "PUID and PGID must be numbers" >&2; exit 64 ;; esac
  if [ "$PUID" = 0 ]; then
    echo "refusing to run the daemon as root (PUID=0)" >&2
    exit 64
  fi
  getent group "$PGID" >/dev/null || groupadd -g "$PGID" clearskies
  getent passwd "$PUID" >/dev/null || useradd -u "$PUID" -g "$PGID" -d "$CLEARSKIES_HOME" -M -s /usr/sbin/nologin clearskies
  mkdir -p "$CLEARSKIES_HOME"
  chown "$PUID:$PGID" "$CLEARSKIES_HOME"
  chmod 0700 "$CLEARSKIES_HOME"
  exec setpriv --reuid="$PUID" --regid="$PGID" --init-groups --inh-caps=-all -- "$@"
fi
exec "$@"
