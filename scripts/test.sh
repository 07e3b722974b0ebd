#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (idempotently), then runs
# lint, type checks and pytest against a regular (non-editable) install of gatekey in .venv.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_apt_packages dbus gnome-keyring libsecret-tools hyperfine chromium shellcheck faketime strace
ensure_npm_deps tests/peers/oidc  # the OpenID provider test peer (node-oidc-provider)
ensure_venv
step "installing gatekey with its test extras into .venv"
# setuptools copies the package into build/lib and never removes a file from it: a module that was
# deleted or renamed would still be installed (and tested) from there.
rm -rf build
.venv/bin/python -m pip install --quiet --disable-pip-version-check '.[test]'
# A regular install, rebuilt from the working tree every time: the tests and the benchmark run
# exactly what a user gets (an editable install adds an import hook to every start).
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall .

step "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
step "mypy (strict on helpers/)"
.venv/bin/mypy
step "pytest"
# Run from tests/' parent with the installed package first on the path, never helpers/.
# Two workers, each taking whole modules (--dist loadfile: a module's session peers and its
# timing assumptions stay on one worker): the suite takes about half as long on two cores.
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
