#!/bin/sh
# Grafana's entrypoint in the compose stack: its admin password is GF_SECURITY_ADMIN_PASSWORD
# when set, else one generated at the first start and kept (mode 0600) in the grafana-data
# volume, never Grafana's admin/admin. Grafana reads it only when it creates its database;
# to change it later: `grafana cli admin reset-admin-password NEW` in the container.
# GRAFANA_PASSWORD_FILE and GRAFANA_RUN (the image's /run.sh) are for the test
# (tests/docker.rs).
set -eu
file="${GRAFANA_PASSWORD_FILE:-/var/lib/grafana/clearskies-admin-password}"
if [ -z "${GF_SECURITY_ADMIN_PASSWORD:-}" ]; then
  if [ ! -s "$file" ]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '\n/+=' >"$file")
    echo "grafana: generated the admin password (user admin); read it with: cat $file" >&2
  fi
  GF_SECURITY_ADMIN_PASSWORD="$(cat "$file")"
  export GF_SECURITY_ADMIN_PASSWORD
fi
exec "${GRAFANA_RUN:-/run.sh}" "$@"
