# Shared by scripts/*.sh: idempotent set-up steps. Sourced, not run.

step() { printf '\n==> %s\n' "$*" >&2; }

# Install Debian packages that are missing (apt only when something is missing).
ensure_apt_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The real interpreter (never a pyenv/asdf shim: the installed scripts must start it directly).
real_python() {
  local py
  for py in python3.13 python3.12 python3.11 python3.10 python3; do
    command -v "$py" >/dev/null 2>&1 || continue
    "$py" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null || continue
    "$py" -c 'import os, sys; print(os.path.realpath(sys.executable))'
    return 0
  done
  echo "gatekey needs Python 3.10 or newer" >&2
  return 1
}

ensure_venv() {
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
    step "creating .venv"
    rm -rf .venv
    "$(real_python)" -m venv .venv
  fi
}

# `npm ci` in DIR when its node_modules is missing or was installed from another package-lock.json
# (node_modules/.gatekey-stamp holds the sha256 of the lock it was installed from).
ensure_npm_deps() {
  local dir="$1" stamp="$1/node_modules/.gatekey-stamp" want
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node and npm are needed for the test peers in $dir (install Node.js 20 or newer)" >&2
    return 1
  fi
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  step "npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$want" >"$stamp"
}

# --- bundle (issue 16) -------------------------------------------------------------------------
# What scripts/test.sh runs against the bundle: the run contract (every context, stdout, exit
# codes, hygiene), the source contract (every built-in kind, the cache hit and the cached
# fallback), and the done-when cases: a keychain credential (real Secret Service), an IdP token
# (the real OIDC provider: client credentials, device code, the silent refresh in the worker) and
# a vault secret; and a refresh killed mid-way losing no sign-in (the frozen worker, ~11 s).
# About a minute on two workers; the rest of the suite exercises the same code.
# shellcheck disable=SC2034 # used by scripts/test.sh, which sources this file
BUNDLE_TESTS=(
  tests/blackbox/run/test_contract.py
  tests/blackbox/sources/test_source_contract.py
  tests/blackbox/sources/test_keychain.py::test_store_then_print_byte_exact_in_every_context
  tests/blackbox/sources/test_keychain.py::test_a_stored_item_is_readable_by_secret_tool_and_keyring
  tests/blackbox/sources/test_keychain.py::test_a_value_set_by_keyring_is_read_by_gatekey
  tests/blackbox/sources/test_vault.py::test_vault_token_from_the_environment_kv2
  tests/blackbox/sources/test_vault.py::test_second_run_is_served_from_the_cache
  tests/blackbox/sources/test_vault.py::test_jwt_login_chain_caches_and_renews_the_vault_token
  tests/blackbox/sources/test_vault.py::test_approle_login_with_secret_id_from_the_environment
  tests/blackbox/sources/test_idp_flows.py::test_client_credentials_token_then_cache_hit
  tests/blackbox/sources/test_idp_flows.py::test_device_code_login_then_silent_in_every_context
  tests/blackbox/sources/test_idp_flows.py::test_silent_refresh_rotates_the_refresh_token
  tests/reliability/test_frozen_worker_kill.py
)
# Not for a frozen gatekey: `python -X importtime` on the executable (the bundle is not a Python
# script; its entry imports what the console script's does), and the example plugin kind (a
# bundle takes built-in kinds only: it has no site-packages to install a plugin into). Nor are
# the tests whose stand-ins reach gatekey through PYTHONPATH (test keyring backends, a
# sitecustomize): a bundle ignores PYTHONPATH, as it should.
# shellcheck disable=SC2034 # used by scripts/test.sh
BUNDLE_DESELECT=(
  --deselect tests/blackbox/run/test_contract.py::test_cache_hit_imports_only_the_standard_library
  --deselect tests/blackbox/run/test_contract.py::test_installed_script_runs_the_venv_python_directly
  -k "not token-file"
)

# Build the bundle the tests run (install/build-bundle.sh --extras aws) unless one built from the
# same inputs is there; prints its folder. The inputs: gatekey's code, the build script and spec,
# the lock, pyproject.toml.
ensure_test_bundle() {
  local out=dist/test-bundle want
  want=$( (cat pyproject.toml install/build-bundle.sh install/common/build-venv.sh install/bundle/* \
    install/locks/bundle-linux-aws.txt; find helpers -name '*.py' -print0 | LC_ALL=C sort -z |
    xargs -0 cat) | sha256sum | cut -c1-16)
  if [ ! -f "$out/.inputs" ] || [ "$(cat "$out/.inputs")" != "$want" ]; then
    step "building the bundle (install/build-bundle.sh --extras aws)"
    rm -rf "$out"
    bash install/build-bundle.sh --out "$out" --extras aws >/dev/null
    printf '%s\n' "$want" >"$out/.inputs"
  fi
  local dir
  for dir in "$PWD/$out"/gatekey-*/; do printf '%s\n' "${dir%/}"; done
}
# --- end bundle --------------------------------------------------------------------------------
