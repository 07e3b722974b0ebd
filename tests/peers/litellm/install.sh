#!/usr/bin/env bash
# The LiteLLM proxy the gateway tests run (tests/support/gateways/litellm_peer.py), in a venv of
# its own (never gatekey's .venv: litellm[proxy] pins ~115 packages of its own), installed from
# requirements.txt beside this file (exact versions, --require-hashes, wheels only) into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/gatekey-test-peers/litellm-<hash of the inputs>
# The inputs are requirements.txt, the interpreter and STEPS (bump it when the install steps below
# change): a change to any of them is a new folder, so a stale venv is never used; an unchanged
# one costs nothing (the stamp is written last, so an interrupted install is redone). Folders of
# older inputs are left in place (another checkout may still use one; ~760 MB each): remove them
# by hand. Needs CPython 3.11: the hashes are its wheels'.
#
#   install.sh               install now, idempotently (about a minute the first time)
#   install.sh --background  start the install detached and return at once, holding the lock for
#                            it (scripts/test.sh: it runs while gatekey installs and ruff and mypy
#                            check; the fixture waits for the lock, then for the stamp)
#   install.sh --path        print the venv's folder; <folder>.lock, <folder>.log beside it
set -euo pipefail
STEPS=1
here="$(cd "$(dirname "$0")" && pwd)"

python=""
for candidate in python3.11 /usr/bin/python3.11; do
  if command -v "$candidate" >/dev/null 2>&1; then
    # The real interpreter, not a pyenv/asdf shim (the venv must not depend on the shim).
    python="$("$candidate" -c 'import os, sys; print(os.path.realpath(sys.executable))')" && break
  fi
done
if [ -z "$python" ]; then
  echo "tests/peers/litellm/install.sh: CPython 3.11 is needed (requirements.txt pins its wheels)" >&2
  # From scripts/test.sh: the rest of the suite runs; the LiteLLM tests fail naming this script.
  [ "${1:-}" = "--background" ] && exit 0
  exit 1
fi

hash="$( (cat "$here/requirements.txt"; echo "$python $STEPS") | sha256sum | cut -c1-16)"
root="${XDG_CACHE_HOME:-$HOME/.cache}/gatekey-test-peers"
venv="$root/litellm-$hash"
stamp="$venv/.gatekey-stamp"

case "${1:-}" in
  --path)
    printf '%s\n' "$venv"
    exit 0
    ;;
  --background)
    [ -f "$stamp" ] && exit 0
    mkdir -p "$root"
    exec 9>"$venv.lock"
    # Taken here, before returning, so a test starting next finds the install running; held
    # already means an install is running (another checkout's): the fixture waits for that one.
    flock -n 9 || exit 0
    # The child inherits fd 9 and with it the lock, until it exits; it holds none of our output.
    GATEKEY_LITELLM_LOCKED=1 setsid bash "$0" </dev/null >"$venv.log" 2>&1 9>&9 &
    echo "LiteLLM test peer: installing in the background into $venv (log: $venv.log)" >&2
    exit 0
    ;;
  "") ;;
  *)
    echo "usage: $0 [--background | --path]" >&2
    exit 2
    ;;
esac

[ -f "$stamp" ] && exit 0
mkdir -p "$root"
if [ -z "${GATEKEY_LITELLM_LOCKED:-}" ]; then
  exec 9>"$venv.lock"
  flock 9
  [ -f "$stamp" ] && exit 0  # another run installed it while we waited
fi
echo "==> installing the LiteLLM test peer into $venv" >&2
start=$(date +%s)
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  --require-hashes --only-binary=:all: --no-deps -r "$here/requirements.txt"
# A smoke test of the install itself: the proxy's modules import (without a network fetch).
LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/python" -c 'import jwt, litellm.proxy.proxy_server'
printf '%s\n' "$hash" >"$stamp"
echo "==> LiteLLM test peer installed in $(($(date +%s) - start)) s" >&2
