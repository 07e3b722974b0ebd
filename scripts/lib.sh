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
