#!/bin/sh
# gatekey's installer for Linux and macOS (install/linux/install.sh and install/macos/install.sh
# run this with the platform's defaults). It puts gatekey in its own virtual environment in an
# admin-owned place, links the executables into a stable bin directory, installs the system
# config, and can remove all of it again. Run it as root; see install/README.md.
#
# Usage: install-unix.sh --platform linux|macos [options]   (see usage() below)
set -eu

PROG=${GATEKEY_INSTALL_PROG:-install.sh}
EXES="gatekey gatekey-keychain gatekey-idp gatekey-vault"
MANIFEST_NAME=.gatekey-install

usage() {
  cat <<EOF
Usage: $PROG [options]

Install gatekey into an isolated virtual environment (re-run to upgrade in place).

  --bundle FILE       install the self-contained bundle FILE (install/build-bundle.sh's .tar.gz:
                      no Python needed), checked against FILE.sha256 or --sha256 first
  --sha256 HEX        the bundle's expected SHA-256 (instead of FILE.sha256)
  --wheel FILE        install this gatekey wheel (dependencies from --wheelhouse, else the index)
  --wheelhouse DIR    install offline from this folder of wheels (install/build-wheelhouse.sh's):
                      pip --require-hashes --no-index -r DIR/requirements.txt
  --index-url URL     the package index to use (default: pip's configuration, else PyPI); given
                      alone, gatekey itself comes from it too (an index of yours that hosts it)
  --config FILE       install FILE as the system config after 'gatekey config validate' passes
                      (replaces the installed one; without --config an installed config is kept)
  --python PY         the interpreter for the virtual environment (default: the newest real
                      python3.10+ on PATH; pyenv/asdf shims are resolved to the real binary)
  --prefix DIR        the virtual environment (default: $DEFAULT_PREFIX)
  --bin-dir DIR       where the executables are linked (default: $DEFAULT_BIN_DIR)
  --config-dir DIR    where config.toml goes (default: $DEFAULT_CONFIG_DIR)
  --uninstall         remove the virtual environment and the links this installer made
  --purge             with --uninstall: also remove the system config file
  -h, --help          this text

With none of --wheel, --wheelhouse and --index-url, gatekey is built from the checkout this
installer is in, its dependencies coming from the package index. gatekey is not published on
PyPI yet, and a "gatekey" found there is not this project's: the installer never asks for it.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

PLATFORM=""
WHEEL=""
BUNDLE=""
BUNDLE_SHA256=""
WHEELHOUSE=""
INDEX_URL=""
CONFIG=""
PYTHON=""
PREFIX=""
BIN_DIR=""
CONFIG_DIR=""
UNINSTALL=0
PURGE=0

need_value() { [ "$2" -ge 2 ] || die "$1 needs a value"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --platform) need_value "$1" $#; PLATFORM=$2; shift 2 ;;
    --wheel) need_value "$1" $#; WHEEL=$2; shift 2 ;;
    --bundle) need_value "$1" $#; BUNDLE=$2; shift 2 ;;
    --sha256) need_value "$1" $#; BUNDLE_SHA256=$2; shift 2 ;;
    --wheelhouse) need_value "$1" $#; WHEELHOUSE=$2; shift 2 ;;
    --index-url) need_value "$1" $#; INDEX_URL=$2; shift 2 ;;
    --config) need_value "$1" $#; CONFIG=$2; shift 2 ;;
    --python) need_value "$1" $#; PYTHON=$2; shift 2 ;;
    --prefix) need_value "$1" $#; PREFIX=$2; shift 2 ;;
    --bin-dir) need_value "$1" $#; BIN_DIR=$2; shift 2 ;;
    --config-dir) need_value "$1" $#; CONFIG_DIR=$2; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h | --help) HELP=1; shift ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

case "$PLATFORM" in
  linux)
    DEFAULT_PREFIX=/opt/gatekey
    DEFAULT_CONFIG_DIR=/etc/gatekey
    ;;
  macos)
    DEFAULT_PREFIX="/Library/Application Support/gatekey"
    DEFAULT_CONFIG_DIR="/Library/Application Support/gatekey"
    ;;
  *) die "--platform must be linux or macos (run install/linux/install.sh or install/macos/install.sh)" ;;
esac
DEFAULT_BIN_DIR=/usr/local/bin
if [ "${HELP:-0}" = 1 ]; then
  usage
  exit 0
fi
# The file gatekey itself reads as the managed config (helpers/gatekey/paths.py).
SYSTEM_CONFIG="$DEFAULT_CONFIG_DIR/config.toml"

# Absolute paths without requiring realpath(1) (absent on older macOS).
absolute() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$(pwd)" "$1" ;;
  esac
}
strip_slash() {
  p=$1
  while [ "${#p}" -gt 1 ] && [ "${p%/}" != "$p" ]; do p=${p%/}; done
  printf '%s\n' "$p"
}

PREFIX=$(strip_slash "$(absolute "${PREFIX:-$DEFAULT_PREFIX}")")
BIN_DIR=$(strip_slash "$(absolute "${BIN_DIR:-$DEFAULT_BIN_DIR}")")
CONFIG_DIR=$(strip_slash "$(absolute "${CONFIG_DIR:-$DEFAULT_CONFIG_DIR}")")
MANIFEST="$PREFIX/$MANIFEST_NAME"
CONFIG_DEST="$CONFIG_DIR/config.toml"

[ "$PURGE" = 0 ] || [ "$UNINSTALL" = 1 ] || die "--purge goes with --uninstall"
if [ "$UNINSTALL" = 1 ]; then
  [ -z "$WHEEL$WHEELHOUSE$CONFIG$INDEX_URL$BUNDLE" ] || die "--uninstall takes no --wheel, --wheelhouse, --index-url, --bundle or --config"
fi
if [ -n "$BUNDLE" ] && [ -n "$WHEEL$WHEELHOUSE$INDEX_URL$PYTHON" ]; then
  die "--bundle brings its own Python: it takes no --wheel, --wheelhouse, --index-url or --python"
fi
[ -z "$BUNDLE_SHA256" ] || [ -n "$BUNDLE" ] || die "--sha256 goes with --bundle"
# What is installed at the prefix: a virtual environment, or a bundle (marked by this file).
BUNDLE_MARK=.gatekey-bundle

# Ownership. The helper is trusted with credentials, so it and its config must not be writable by
# users (otherwise any user process could swap the executable or point it elsewhere). As root
# everything this script writes is made root-owned and not group/other-writable. Without root,
# installing to the real system locations is refused; a private location (tests, a trial run) is
# allowed with a warning, because ownership cannot be enforced there.
if [ "$(id -u)" -eq 0 ]; then
  IS_ROOT=1
else
  IS_ROOT=0
  if [ "$PREFIX" = "$DEFAULT_PREFIX" ] || [ "$BIN_DIR" = "$DEFAULT_BIN_DIR" ] || [ "$CONFIG_DIR" = "$DEFAULT_CONFIG_DIR" ]; then
    die "run as root (sudo) to change the system locations ($DEFAULT_PREFIX, $DEFAULT_BIN_DIR, $DEFAULT_CONFIG_DIR)"
  fi
  say "warning: not running as root; files stay owned by $(id -un) (fine for a trial, not for a fleet)"
fi
umask 022

# Make PATH (a file or directory) root-owned and not writable by group or others.
lock_down() {
  if [ "$IS_ROOT" = 1 ]; then
    chown -R 0:0 "$1"
  fi
  chmod -R go-w "$1"
}

# Directories this run created (so --uninstall can remove them when empty), one per line; an
# upgrade keeps what an earlier run recorded.
CREATED=""
make_dir() { # DIR: mkdir -p, remembering each directory that did not exist
  d=$1
  missing=""
  while [ ! -d "$d" ]; do
    missing="$d
$missing"
    d=$(dirname "$d")
  done
  mkdir -p "$1"
  CREATED="$CREATED$missing"
}

# --- uninstall --------------------------------------------------------------------------------
manifest_value() { # KEY: a value recorded by the install, else empty
  [ -f "$MANIFEST" ] || return 0
  sed -n "s/^$1=//p" "$MANIFEST" | tail -n 1
}
manifest_created() { # the directories recorded as created by an install
  [ -f "$MANIFEST" ] || return 0
  sed -n "s/^created_dir=//p" "$MANIFEST"
}

uninstall() {
  if [ ! -f "$MANIFEST" ] && [ ! -f "$PREFIX/pyvenv.cfg" ] && [ ! -f "$PREFIX/$BUNDLE_MARK" ]; then
    say "nothing installed at $PREFIX"
  fi
  created=$(manifest_created)
  recorded_bin=$(manifest_value bin_dir)
  recorded_config=$(manifest_value config_dir)
  bin_dir=${recorded_bin:-$BIN_DIR}
  config_dir=${recorded_config:-$CONFIG_DIR}
  for exe in $EXES; do
    link="$bin_dir/$exe"
    # Only links into this prefix: never a file someone else put there.
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$PREFIX/bin/$exe" ]; then
      rm -f "$link"
      say "removed $link"
    fi
  done
  if [ -d "$PREFIX" ]; then
    # The prefix holds the virtual environment; on macOS it is also the config's directory.
    had_venv=0
    [ ! -f "$PREFIX/pyvenv.cfg" ] || had_venv=1
    [ ! -f "$PREFIX/$BUNDLE_MARK" ] || had_venv=2
    for entry in "$PREFIX"/* "$PREFIX"/.[!.]* "$PREFIX"/..?*; do
      [ -e "$entry" ] || [ -L "$entry" ] || continue
      if [ "$entry" = "$config_dir/config.toml" ] && [ "$PURGE" = 0 ]; then
        continue
      fi
      rm -rf "$entry"
    done
    rmdir "$PREFIX" 2>/dev/null || true
    [ "$had_venv" != 1 ] || say "removed the virtual environment $PREFIX"
    [ "$had_venv" != 2 ] || say "removed the bundle $PREFIX"
  fi
  if [ -f "$config_dir/config.toml" ]; then
    if [ "$PURGE" = 1 ]; then
      rm -f "$config_dir/config.toml"
      say "removed $config_dir/config.toml"
    else
      say "kept $config_dir/config.toml (--purge removes it)"
    fi
  fi
  # A config kept by an earlier --uninstall outlived the record of what was created: its own
  # directory goes when empty, its parents (e.g. /etc) were never ours to create.
  if [ "$PURGE" = 1 ] && [ -d "$config_dir" ]; then
    rmdir "$config_dir" 2>/dev/null || say "kept $config_dir: it holds other files"
  fi
  # Directories the install created, deepest first, when nothing else is in them.
  printf '%s\n' "$created" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2- |
    while IFS= read -r dir; do
      if [ -n "$dir" ] && [ -d "$dir" ]; then rmdir "$dir" 2>/dev/null || true; fi
    done
  rmdir "$PREFIX" 2>/dev/null || true
}

if [ "$UNINSTALL" = 1 ]; then
  uninstall
  exit 0
fi

# --- checks before anything changes -------------------------------------------------------------
if [ -n "$WHEEL" ]; then
  [ -f "$WHEEL" ] || die "no such wheel file: $WHEEL"
  case "$WHEEL" in *.whl) ;; *) die "--wheel needs a .whl file: $WHEEL" ;; esac
  WHEEL=$(absolute "$WHEEL")
fi
if [ -n "$WHEELHOUSE" ]; then
  [ -d "$WHEELHOUSE" ] || die "no such wheelhouse directory: $WHEELHOUSE"
  WHEELHOUSE=$(absolute "$WHEELHOUSE")
  # Every wheel is installed by its SHA-256 (pip --require-hashes): a wheelhouse without its list
  # is refused rather than installed unchecked.
  [ -f "$WHEELHOUSE/requirements.txt" ] ||
    die "$WHEELHOUSE has no requirements.txt (the SHA-256 of every wheel); build it with install/build-wheelhouse.sh"
fi
if [ -n "$CONFIG" ]; then
  if [ ! -f "$CONFIG" ] || [ ! -r "$CONFIG" ]; then die "cannot read the config file: $CONFIG"; fi
  CONFIG=$(absolute "$CONFIG")
fi
# Where gatekey comes from when neither a wheel nor a wheelhouse is given: an index the admin
# named, else the gatekey checkout around this script (install/common/..), never PyPI's "gatekey".
CHECKOUT=""
if [ -z "$WHEEL$WHEELHOUSE$INDEX_URL$BUNDLE" ]; then
  CHECKOUT=$(cd "$(dirname "$0")/../.." && pwd)
  grep -q '^name = "gatekey"$' "$CHECKOUT/pyproject.toml" 2>/dev/null ||
    die "say where gatekey comes from: --wheel FILE or --wheelhouse DIR (install/build-wheelhouse.sh makes one), or --index-url URL of an index that hosts your gatekey build (gatekey is not on PyPI yet; a \"gatekey\" there is not this project's)"
fi
if [ -d "$PREFIX" ] && [ ! -f "$PREFIX/pyvenv.cfg" ] && [ ! -f "$PREFIX/$BUNDLE_MARK" ]; then
  # Refuse to turn an unrelated directory into a venv (and later remove it on --uninstall).
  for entry in "$PREFIX"/* "$PREFIX"/.[!.]*; do
    [ -e "$entry" ] || continue
    [ "$entry" = "$CONFIG_DEST" ] && continue
    die "$PREFIX exists and is not a gatekey virtual environment; choose another --prefix"
  done
fi

# --- a bundle (install/build-bundle.sh): verified, unpacked to <prefix>/bin, no Python --------
sha256_file() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}
install_bundle() {
  [ -f "$BUNDLE" ] || die "no such bundle file: $BUNDLE"
  case "$BUNDLE" in *.tar.gz | *.tgz) ;; *) die "--bundle needs the .tar.gz install/build-bundle.sh writes: $BUNDLE" ;; esac
  want=$BUNDLE_SHA256
  if [ -z "$want" ]; then
    [ -f "$BUNDLE.sha256" ] || die "no $BUNDLE.sha256 to check the bundle against; pass --sha256 HEX"
    want=$(cut -d' ' -f1 "$BUNDLE.sha256")
  fi
  got=$(sha256_file "$BUNDLE")
  [ "$(printf '%s' "$want" | tr 'A-F' 'a-f')" = "$got" ] ||
    die "$BUNDLE does not match its SHA-256 (expected $want, got $got); not installed"
  say "verified $(basename "$BUNDLE") (sha256 $got)"
  make_dir "$PREFIX"
  staging="$PREFIX/.bundle.new"
  rm -rf "$staging"
  mkdir "$staging"
  # The archive holds one folder, gatekey-<version>-<os>-<arch>/; no owner from the archive.
  if ! (cd "$staging" && gzip -dc "$BUNDLE" | tar -xf - -o); then
    rm -rf "$staging"
    die "cannot unpack $BUNDLE"
  fi
  set -- "$staging"/gatekey-*/gatekey
  if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    rm -rf "$staging"
    die "$BUNDLE holds no gatekey-<version>/gatekey"
  fi
  folder=$(dirname "$1")
  "$folder/gatekey" version >/dev/null 2>&1 || { rm -rf "$staging"; die "the bundle's gatekey does not run on this machine"; }
  if [ -f "$PREFIX/pyvenv.cfg" ]; then
    say "replacing the virtual environment $PREFIX with the bundle"
    for entry in bin lib lib64 include share pyvenv.cfg; do rm -rf "${PREFIX:?}/$entry"; done
  elif [ -d "$PREFIX/bin" ]; then
    say "upgrading the bundle in place: $PREFIX"
  fi
  # The old bin goes aside first, the new one takes its name: a run in between finds one or the
  # other, never half of each.
  rm -rf "$PREFIX/.bin.old"
  [ ! -d "$PREFIX/bin" ] || mv "$PREFIX/bin" "$PREFIX/.bin.old"
  mv "$folder" "$PREFIX/bin"
  rm -rf "$PREFIX/.bin.old" "$staging"
  basename "$folder" >"$PREFIX/$BUNDLE_MARK"
}

# The interpreter: a real one, never a pyenv/asdf shim (the console scripts' shebang must start
# Python directly; a shim adds ~110 ms to every run and depends on the user's shell setup).
resolve_python() { # CANDIDATE: prints the real executable of a usable Python 3.10+, or fails
  "$1" -c 'import os, sys; assert sys.version_info >= (3, 10); print(os.path.realpath(sys.executable))' 2>/dev/null
}
if [ -n "$BUNDLE" ]; then
  BUNDLE=$(absolute "$BUNDLE")
  install_bundle
else
if [ -n "$PYTHON" ]; then
  PY=$(resolve_python "$PYTHON") || die "$PYTHON is not a working Python 3.10 or newer"
else
  PY=""
  for candidate in python3.13 python3.12 python3.11 python3.10 python3; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    PY=$(resolve_python "$candidate") && break
    PY=""
  done
  [ -n "$PY" ] || die "gatekey needs Python 3.10 or newer; install it or pass --python"
fi
case "$PY" in
  */shims/*) die "$PY is a version-manager shim; pass the real interpreter with --python" ;;
esac
"$PY" -c 'import venv, ensurepip' 2>/dev/null ||
  die "$PY cannot create virtual environments (on Debian/Ubuntu: apt-get install python3-venv)"
# Every user runs the helper, so every user must reach the interpreter, and none may be able to
# replace it (e.g. a pyenv build under root's or one user's home).
if ! unsafe=$("$PY" -c '
import os, stat, sys
path = sys.argv[1]
while True:
    st = os.stat(path)
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        sys.exit(path + " is writable by a user other than root")
    if not st.st_mode & stat.S_IXOTH:
        sys.exit(path + " is not accessible to other users")
    if path == "/":
        break
    path = os.path.dirname(path)
' "$PY" 2>&1); then
  if [ "$IS_ROOT" = 1 ] && [ "$PREFIX" = "$DEFAULT_PREFIX" ]; then
    die "$PY cannot serve every user: $unsafe; pass a system interpreter with --python"
  fi
  say "warning: $PY cannot serve every user: $unsafe"
fi
PY_VERSION=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# --- the virtual environment ------------------------------------------------------------------
VENV_PY="$PREFIX/bin/python"
NEW_VENV=0
if [ -f "$PREFIX/pyvenv.cfg" ] && [ -x "$VENV_PY" ] &&
  [ "$("$VENV_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)" = "$PY_VERSION" ]; then
  say "upgrading in place: $PREFIX (Python $PY_VERSION)"
else
  if [ -f "$PREFIX/pyvenv.cfg" ]; then
    say "recreating $PREFIX for Python $PY_VERSION"
    for entry in bin lib lib64 include share pyvenv.cfg; do rm -rf "${PREFIX:?}/$entry"; done
  fi
  say "creating the virtual environment $PREFIX with $PY"
  make_dir "$PREFIX"
  "$PY" -m venv "$PREFIX"
  NEW_VENV=1
fi

# A failed install from a wheelhouse (a wheel whose SHA-256 differs from requirements.txt, one
# missing) leaves no half-made venv behind when this run created it.
refused() { # WHAT
  if [ "$NEW_VENV" = 1 ]; then
    # The venv's own entries only: on macOS the prefix also holds the config.
    for entry in bin lib lib64 include share pyvenv.cfg; do rm -rf "${PREFIX:?}/$entry"; done
    rmdir "$PREFIX" 2>/dev/null || true
    printf '%s\n' "$CREATED" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2- |
      while IFS= read -r dir; do
        if [ -n "$dir" ] && [ -d "$dir" ]; then rmdir "$dir" 2>/dev/null || true; fi
      done
  fi
  die "$1"
}

# pip's arguments, built in "$@" (POSIX sh has no arrays).
set -- --disable-pip-version-check --no-input --quiet
if [ -n "$WHEELHOUSE" ]; then
  # --isolated: only the wheelhouse, whatever pip configuration the machine has. --require-hashes:
  # only the bytes requirements.txt names (the lock's dependencies and the gatekey wheel).
  set -- "$@" --isolated --no-index --find-links "$WHEELHOUSE" --require-hashes
elif [ -n "$INDEX_URL" ]; then
  set -- "$@" --index-url "$INDEX_URL"
fi
if [ -n "$WHEELHOUSE" ]; then
  scratch=$(mktemp -d)
  grep -v '^gatekey==' "$WHEELHOUSE/requirements.txt" >"$scratch/deps.txt"
  grep '^gatekey==' "$WHEELHOUSE/requirements.txt" >"$scratch/gatekey.txt" || true
  # pip checks every hash before it installs anything: a refusal leaves the venv as it was.
  if [ -n "$WHEEL" ]; then
    say "installing $(basename "$WHEEL"), its dependencies from $WHEELHOUSE (each checked against requirements.txt)"
    wanted="$scratch/deps.txt"
  else
    [ -s "$scratch/gatekey.txt" ] || { rm -rf "$scratch"; refused "$WHEELHOUSE/requirements.txt names no gatekey wheel"; }
    say "installing gatekey from $WHEELHOUSE (every wheel checked against requirements.txt)"
    wanted="$WHEELHOUSE/requirements.txt"
  fi
  if ! "$VENV_PY" -m pip install "$@" -r "$wanted"; then
    rm -rf "$scratch"
    refused "pip refused the wheelhouse $WHEELHOUSE (above): a wheel missing, or not the one its requirements.txt names; nothing was installed"
  fi
  # gatekey once more, alone: a rebuild with the same version number is what gets installed.
  if [ -n "$WHEEL" ]; then
    # The wheel the admin named, as named (requirements.txt does not name it: no hash mode).
    set -- --disable-pip-version-check --no-input --quiet --isolated --no-index --find-links "$WHEELHOUSE"
    "$VENV_PY" -m pip install "$@" --no-deps --force-reinstall "$WHEEL" || { rm -rf "$scratch"; die "pip could not install $WHEEL"; }
  else
    "$VENV_PY" -m pip install "$@" --no-deps --force-reinstall -r "$scratch/gatekey.txt" || { rm -rf "$scratch"; die "pip could not reinstall gatekey from $WHEELHOUSE"; }
  fi
  rm -rf "$scratch"
elif [ -n "$WHEEL" ]; then
  say "installing $(basename "$WHEEL")"
  "$VENV_PY" -m pip install "$@" --upgrade "$WHEEL"
  # The same version number can be a different build: the wheel given is what gets installed.
  "$VENV_PY" -m pip install "$@" --no-deps --force-reinstall "$WHEEL"
elif [ -n "$CHECKOUT" ]; then
  say "installing gatekey from the checkout $CHECKOUT (its dependencies from the package index)"
  # From a copy: setuptools builds in the source's build/ and never removes a file from it (a
  # renamed module would still be installed), and root would leave that folder in the checkout.
  source=$(mktemp -d)
  (cd "$CHECKOUT" && tar -cf - --exclude=./.git --exclude=./.venv --exclude=./build \
    --exclude=./dist --exclude=node_modules .) | (cd "$source" && tar -xf -)
  # (pip reinstalls a local folder even when that version is installed: no --force-reinstall)
  if ! "$VENV_PY" -m pip install "$@" --upgrade "$source"; then
    rm -rf "$source"
    die "pip could not install gatekey from $CHECKOUT"
  fi
  rm -rf "$source"
else
  say "installing gatekey${INDEX_URL:+ from $INDEX_URL}"
  "$VENV_PY" -m pip install "$@" --upgrade gatekey
fi
fi
"$PREFIX/bin/gatekey" version >/dev/null 2>&1 || die "the installed $PREFIX/bin/gatekey does not run"
lock_down "$PREFIX"

# --- the system config ------------------------------------------------------------------------
# gatekey config validate, with nothing from this shell: a private HOME (no user config) and the
# file to check standing in as the managed config. gatekey ignores that stand-in when the real
# system file exists (users cannot shadow the admin's file), which the caller handles.
validate_config() { # FILE
  scratch=$(mktemp -d)
  if env -i HOME="$scratch" XDG_CONFIG_HOME="$scratch/config" XDG_CACHE_HOME="$scratch/cache" \
    GATEKEY_CACHE_DIR="$scratch/cache" GATEKEY_MANAGED_CONFIG="$1" PATH=/usr/bin:/bin \
    "$PREFIX/bin/gatekey" config validate >"$scratch/out" 2>&1; then
    rm -rf "$scratch"
    return 0
  fi
  sed 's/^/  /' "$scratch/out" >&2
  rm -rf "$scratch"
  return 1
}

install_config() {
  make_dir "$CONFIG_DIR"
  chmod 0755 "$CONFIG_DIR"
  [ "$IS_ROOT" = 0 ] || chown 0:0 "$CONFIG_DIR"
  staged="$CONFIG_DIR/.config.toml.new"
  cp "$CONFIG" "$staged"
  chmod 0644 "$staged"
  [ "$IS_ROOT" = 0 ] || chown 0:0 "$staged"
  if [ -e "$SYSTEM_CONFIG" ] && [ "$CONFIG_DEST" = "$SYSTEM_CONFIG" ]; then
    # Replacing the live file: the only way to validate it is in place, so keep the old one and
    # put it back if the new one fails.
    cp -p "$CONFIG_DEST" "$CONFIG_DIR/.config.toml.old"
    mv -f "$staged" "$CONFIG_DEST"
    if ! validate_config "$CONFIG_DEST"; then
      mv -f "$CONFIG_DIR/.config.toml.old" "$CONFIG_DEST"
      die "$CONFIG does not validate (gatekey config validate, above); kept the installed config"
    fi
    rm -f "$CONFIG_DIR/.config.toml.old"
  else
    if [ -e "$SYSTEM_CONFIG" ]; then
      say "warning: $SYSTEM_CONFIG exists, so gatekey reads it and cannot validate $CONFIG here"
    elif ! validate_config "$CONFIG"; then
      rm -f "$staged"
      die "$CONFIG does not validate (gatekey config validate, above); the config was not installed"
    fi
    mv -f "$staged" "$CONFIG_DEST"
  fi
  say "installed $CONFIG_DEST"
}

if [ -n "$CONFIG" ]; then
  install_config
elif [ -f "$CONFIG_DEST" ]; then
  say "kept $CONFIG_DEST"
fi

# --- stable paths -----------------------------------------------------------------------------
make_dir "$BIN_DIR"
for exe in $EXES; do
  link="$BIN_DIR/$exe"
  target="$PREFIX/bin/$exe"
  if [ -e "$link" ] && [ ! -L "$link" ]; then
    die "$link exists and is not a link; remove it (another gatekey install?) and re-run"
  fi
  if [ -L "$link" ] && [ "$(readlink "$link")" != "$target" ]; then
    say "warning: replacing $link (pointed to $(readlink "$link"))"
  fi
  ln -sfn "$target" "$link"
done

# What --uninstall needs to find (the config only matters for --purge).
previously_created=$(manifest_created)
{
  echo "# written by gatekey's installer; read by --uninstall"
  echo "bin_dir=$BIN_DIR"
  echo "config_dir=$CONFIG_DIR"
  printf '%s\n%s\n' "$previously_created" "$CREATED" | sort -u | sed -n 's/^\(.\)/created_dir=\1/p'
} >"$MANIFEST"
lock_down "$MANIFEST"

say "$("$PREFIX/bin/gatekey" version 2>/dev/null) installed: $BIN_DIR/gatekey -> $PREFIX/bin/gatekey"
say "inferenceCredentialHelper: $PREFIX/bin/gatekey"
