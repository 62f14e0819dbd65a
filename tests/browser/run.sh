#!/usr/bin/env bash
# Runs the web interface's browser test (test_web.py) against the built binary.
# Installs Debian's chromium and chromium-driver first when they are missing (as root).
# Usage: tests/browser/run.sh [test_web.py arguments, e.g. TestWeb.test_05_files]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "tests/browser: chromium and chromium-driver are needed (apt-get install chromium chromium-driver)" >&2
        exit 1
    fi
fi
exec python3 "$here/test_web.py" "$@"
