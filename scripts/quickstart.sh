#!/usr/bin/env bash
# Install gatekey into .venv and do its main job once: store a gateway key in the OS keychain,
# then print it exactly as Claude runs the helper (no arguments, stdin closed). It ends with what
# to run next, naming the installed executable by its full path (.venv/bin is not on PATH).
#   bash scripts/quickstart.sh                  # stores a generated demo key
#   printf %s "$KEY" | bash scripts/quickstart.sh   # stores your key
# On a Linux machine with no desktop session (no Secret Service), the demo runs against a private,
# temporary gnome-keyring it starts and stops itself, and then says how to keep a key for real
# there; see the README, "Headless Linux".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

bin="$(pwd -P)/.venv/bin"
gatekey="$bin/gatekey"

# What to run next, on stderr like every other line here (stdout carries only the key).
next_steps() {
  local demo="$1"
  {
    printf '\n==> gatekey works: the line above is what Claude reads from %s.\n' "$gatekey"
    # shellcheck disable=SC2016 # $PATH is printed for the reader, not expanded here
    printf '\nNext (gatekey is not on your PATH; for this shell: export PATH="%s:$PATH"):\n' "$bin"
    if [ "$demo" = demo ]; then
      printf '  %s store        # replace the demo key with your gateway key (hidden prompt)\n' "$gatekey"
    fi
    printf '  %s status       # what is stored and cached, never the key\n' "$gatekey"
    printf '  %s              # the key, as Claude runs the helper\n' "$gatekey"
    printf 'Claude Desktop: inferenceCredentialHelper=%s (README, "Use it")\n' "$gatekey"
  } >&2
}

# After the demo on a machine without a Secret Service: nothing is stored any more (the keychain
# went with the demo), so say how to keep a key here, rather than leave a helper that exits 69.
headless_next_steps() {
  {
    printf '\n==> gatekey works: the line above is what Claude reads from %s.\n' "$gatekey"
    printf '    This machine has no Secret Service (no desktop session): the demo'"'"'s keychain\n'
    printf '    and the key in it are gone, so %s now exits 69 until there is one.\n' "$gatekey"
    printf '\nNext, either:\n'
    printf '  1. start a keychain for your shell, unlocked with a password of your choice (the\n'
    printf '     same one reopens it later), and store your key in it:\n'
    printf '       read -rs KEYRING_PASSWORD && export KEYRING_PASSWORD\n'
    # shellcheck disable=SC2016 # the command is printed for the reader, not expanded here
    printf '       dbus-run-session -- sh -c '"'"'printf %%s "$KEYRING_PASSWORD" | gnome-keyring-daemon --unlock --components=secrets >/dev/null; unset KEYRING_PASSWORD; exec "$SHELL"'"'"'\n'
    printf '       %s store\n' "$gatekey"
    printf '       %s\n' "$gatekey"
    printf '  2. or use a source that needs no keychain: a vault, a command that prints the\n'
    printf '     key, or an identity provider (README, "Configuration").\n'
    printf 'Claude Desktop: inferenceCredentialHelper=%s (README, "Use it")\n' "$gatekey"
  } >&2
}

if [ "${1:-}" != "--inside-session" ]; then
  ensure_venv
  step "installing gatekey into .venv"
  # setuptools builds in build/ and never removes a file from it: start clean (see test.sh).
  rm -rf build
  .venv/bin/python -m pip install --quiet --disable-pip-version-check .
  key=""
  [ -t 0 ] || key="$(cat)"
  demo=mine
  if [ -z "$key" ]; then
    key="${GATEKEY_DEMO_KEY:-sk-demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}"
    demo=demo
  fi
  export GATEKEY_QUICKSTART_KEY="$key"
  if [ "$(uname -s)" = Linux ] && ! .venv/bin/python - <<'PY' 2>/dev/null
import secretstorage
conn = secretstorage.dbus_init()
raise SystemExit(0 if secretstorage.check_service_availability(conn) else 1)
PY
  then
    ensure_apt_packages dbus gnome-keyring
    step "no Secret Service here: starting a private, temporary one for this demo"
    demo_dir=$(mktemp -d)
    trap 'rm -rf "$demo_dir"' EXIT
    # (dbus-daemon complains that an unprivileged fd limit cannot be raised: harmless, hidden;
    # a pipeline, not a process substitution, so that its last line comes before what follows)
    { XDG_DATA_HOME="$demo_dir/data" XDG_RUNTIME_DIR="$demo_dir" \
      dbus-run-session -- bash "$0" --inside-session 2>&1 1>&3 3>&- \
      | { grep -v 'Failed to set fd limit' >&2 || true; }; } 3>&1
    headless_next_steps
    exit 0
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

step "storing the key in the keychain: printf %s \"\$KEY\" | $gatekey store"
printf %s "$GATEKEY_QUICKSTART_KEY" | env -u GATEKEY_QUICKSTART_KEY "$gatekey" store
step "printing it as Claude runs the helper: $gatekey (no arguments)"
env -u GATEKEY_QUICKSTART_KEY CLAUDE_HELPER_CONTEXT=interactive "$gatekey" </dev/null
[ "${1:-}" = "--inside-session" ] || next_steps "$demo"
