#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (idempotently), then runs
# lint, type checks and pytest against a regular (non-editable) install of gatekey in .venv.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_apt_packages dbus gnome-keyring libsecret-tools hyperfine chromium shellcheck faketime strace
ensure_npm_deps tests/peers/oidc  # the OpenID provider test peer (node-oidc-provider)
ensure_npm_deps tests/peers/portkey  # Portkey's open-source AI gateway (tests/blackbox/gateways)
bash tests/peers/litellm/install.sh --background  # LiteLLM gateway peer: installs (once) while gatekey installs and is linted; its fixture waits
# The bundle (issue 16) builds in the background from the start: its own venv, its own pace.
bundle_build="" bundle_log=""
if [ $# -eq 0 ] || [ "${GATEKEY_TEST_BUNDLE:-0}" = 1 ]; then
  mkdir -p dist && bundle_log=dist/test-bundle.log
  ensure_test_bundle >"$bundle_log" 2>&1 &
  bundle_build=$!
fi
ensure_venv
step "installing gatekey with its test extras into .venv"
# setuptools copies the package into build/lib and never removes a file from it: a module that was
# deleted or renamed would still be installed (and tested) from there.
rm -rf build
.venv/bin/python -m pip install --quiet --disable-pip-version-check '.[test]'
# A regular install, rebuilt from the working tree every time: the tests and the benchmark run
# exactly what a user gets (an editable install adds an import hook to every start).
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall .
# The example plugin kind the source contract suite runs (tests/support/plugin_kind), beside
# gatekey and without dependencies; skipped when that version with that very module is installed
# (a change to its pyproject.toml alone needs a new version).
plugin=tests/support/plugin_kind
if ! .venv/bin/python - "$plugin" <<'PY'
import re, sys
from importlib import metadata
from pathlib import Path

root = Path(sys.argv[1])
want = re.search(r'^version = "(.+)"$', (root / "pyproject.toml").read_text(), re.M)
try:
    dist = metadata.distribution("gatekey-token-file")
except metadata.PackageNotFoundError:
    sys.exit(1)
module = Path(str(dist.locate_file("gatekey_token_file.py")))
same = module.is_file() and module.read_bytes() == (root / "gatekey_token_file.py").read_bytes()
sys.exit(0 if want and dist.version == want.group(1) and same else 1)
PY
then
  step "installing the example plugin kind ($plugin) into .venv"
  rm -rf "$plugin/build"  # setuptools builds in the tree, and keeps what build/lib held
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "$plugin"
  rm -rf "$plugin/build" "$plugin"/*.egg-info
fi

step "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
step "mypy (strict on helpers/)"
.venv/bin/mypy
step "pytest"
# Run from tests/' parent with the installed package first on the path, never helpers/.
# Two workers, each taking whole modules (--dist loadfile: a module's session peers and its
# timing assumptions stay on one worker): the suite takes about half as long on two cores.
# --- bundle (issue 16): the suite's chosen part against the PyInstaller bundle ----------------
# With no arguments (the whole suite, as CI runs it) or GATEKEY_TEST_BUNDLE=1, the bundle is built
# (install/build-bundle.sh --extras aws; cached by its inputs' hash, see ensure_test_bundle: it
# started in the background above, while gatekey installed and was linted) and BUNDLE_TESTS run
# against its executables (GATEKEY_TEST_BIN_DIR) after the venv's run.
if [ "$bundle_build" ]; then
  # Waited for first: the install tests take the bundle from dist/test-bundle (never a half-written
  # one), instead of building their own.
  if ! wait "$bundle_build"; then
    cat "$bundle_log" >&2
    echo "building the bundle failed (log above)" >&2
    exit 1
  fi
  bundle_dir=$(tail -n 1 "$bundle_log")
  status=0
  .venv/bin/python -m pytest -n 2 --dist loadfile "$@" || status=$?
  step "pytest against the bundle $bundle_dir (${BUNDLE_TESTS[*]})"
  GATEKEY_TEST_BIN_DIR="$bundle_dir" .venv/bin/python -m pytest -n 2 --dist loadfile \
    "${BUNDLE_TESTS[@]}" "${BUNDLE_DESELECT[@]}" || status=$?
  exit "$status"
fi
# --- end bundle --------------------------------------------------------------------------------
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
