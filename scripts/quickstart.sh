#!/usr/bin/env bash
# Install gatekey into .venv and do its main job once: store a gateway key in the OS keychain,
# then print it exactly as Claude runs the helper (no arguments, stdin closed).
#   bash scripts/quickstart.sh                  # stores a generated demo key
#   printf %s "$KEY" | bash scripts/quickstart.sh   # stores your key
# On a Linux machine with no desktop session (no Secret Service), the demo runs against a private,
# temporary gnome-keyring it starts and stops itself; see the README, "Headless Linux".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

if [ "${1:-}" != "--inside-session" ]; then
  ensure_venv
  step "installing gatekey into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check .
  key=""
  [ -t 0 ] || key="$(cat)"
  [ -n "$key" ] || key="${GATEKEY_DEMO_KEY:-sk-demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}"
  export GATEKEY_QUICKSTART_KEY="$key"
  if [ "$(uname -s)" = Linux ] && ! .venv/bin/python - <<'PY' 2>/dev/null
import secretstorage
conn = secretstorage.dbus_init()
raise SystemExit(0 if secretstorage.check_service_availability(conn) else 1)
PY
  then
    ensure_apt_packages dbus gnome-keyring
    step "no Secret Service here: starting a private, temporary one for this demo"
    demo=$(mktemp -d)
    trap 'rm -rf "$demo"' EXIT
    # (dbus-daemon complains that an unprivileged fd limit cannot be raised: harmless, hidden)
    XDG_DATA_HOME="$demo/data" XDG_RUNTIME_DIR="$demo" \
      dbus-run-session -- bash "$0" --inside-session 2> >(grep -v 'Failed to set fd limit' >&2)
    exit $?
  fi
else
  # Inside the private session: an unlocked keyring whose password dies with the demo.
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' \
    | gnome-keyring-daemon --unlock --components=secrets >/dev/null
  for _ in $(seq 50); do
    .venv/bin/python -c 'import secretstorage as s; raise SystemExit(not s.check_service_availability(s.dbus_init()))' 2>/dev/null && break
    sleep 0.1
  done
fi

step "storing the key in the keychain: printf %s \"\$KEY\" | gatekey store"
printf %s "$GATEKEY_QUICKSTART_KEY" | .venv/bin/gatekey store
step "printing it as Claude runs the helper: $(pwd)/.venv/bin/gatekey (no arguments)"
CLAUDE_HELPER_CONTEXT=interactive .venv/bin/gatekey </dev/null
