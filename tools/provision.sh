#!/usr/bin/env bash
# Install the system packages that `make demo` / `make test` need on a fresh Debian machine, when missing:
#   python3-venv  (`python3 -m venv` makes .venv/)
#   gcc, python3-dev  (learn2learn is compiled from source into .venv/)
#   chromium  (only with --browser: the documentation-site browser test opens every page in it)
# As root it runs apt-get; otherwise it fails with the command to run. Does nothing when all are present.
#   usage: tools/provision.sh [--python PYTHON] [--browser]
set -euo pipefail
PY=python3
BROWSER=0
while [ $# -gt 0 ]; do
    case "$1" in
        --python) PY="$2"; shift 2 ;;
        --browser) BROWSER=1; shift ;;
        *) echo "tools/provision.sh: unknown argument $1 (usage: tools/provision.sh [--python PYTHON] [--browser])" >&2; exit 2 ;;
    esac
done

missing=()
if ! command -v "$PY" >/dev/null 2>&1; then
    missing+=(python3 python3-venv python3-dev)
else
    "$PY" -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
    "$PY" -c "import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
        >/dev/null 2>&1 || missing+=(python3-dev)
fi
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=(gcc)
if [ "$BROWSER" = 1 ]; then
    # the docs test looks for $ECGMETA_CHROMIUM, /usr/bin/chromium, then chromium / chromium-browser on PATH
    if [ -n "${ECGMETA_CHROMIUM:-}" ] && [ -x "${ECGMETA_CHROMIUM}" ]; then :
    elif [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :
    else missing+=(chromium); fi
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "Missing system packages: ${missing[*]}." >&2
    echo "Install them (Debian/Ubuntu): sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    case " ${missing[*]} " in *" chromium "*)
        echo "(chromium is for the documentation-site browser test; ECGMETA_CHROMIUM=/path/to/chromium uses another build)" >&2 ;;
    esac
    exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
