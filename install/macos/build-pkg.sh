#!/bin/sh
# Build a macOS installer package (.pkg) for Jamf, Kandji, Intune or any MDM: it carries a
# wheelhouse (install/build-wheelhouse.sh) and, optionally, gatekey's system config; its
# postinstall runs install/macos/install.sh, which creates or upgrades the virtual environment in
# "/Library/Application Support/gatekey" offline and links /usr/local/bin/gatekey.
#
#   install/build-wheelhouse.sh --platform macosx_11_0_arm64 --platform macosx_11_0_x86_64 \
#       --python-version 3.12 --pip-python python3.12 --out build/wh-mac
#   install/macos/build-pkg.sh --wheelhouse build/wh-mac --config corp.toml \
#       --python /Library/Frameworks/Python.framework/Versions/3.12/bin/python3.12 \
#       --version 0.1.0 --sign "Developer ID Installer: Example Corp (TEAMID)" --out gatekey.pkg
#
# The endpoints need that Python (python.org's universal2 installer, deployed first by the MDM);
# the package holds no interpreter. Run on macOS (pkgbuild, productsign come with Xcode's tools).
#
# Code signing, and why Keychain prompts depend on it: a Keychain item's access list names the
# programs allowed to read it without asking, by their code signature. gatekey's secrets are read
# by the venv's Python, i.e. the interpreter the venv points to. Keep that interpreter signed and
# at a stable path (python.org's framework build is signed by the PSF; Homebrew's is ad-hoc signed
# and changes with every upgrade, so users get "python wants to use your confidential
# information" again after each one). Upgrading gatekey itself reinstalls only Python files,
# which the Keychain does not check, so prompts survive gatekey upgrades as long as the
# interpreter stays the same. Sign the package with a Developer ID Installer certificate
# (--sign) so Gatekeeper and MDMs accept it, and notarize it for hand installs:
#   xcrun notarytool submit gatekey.pkg --keychain-profile NOTARY --wait
#   xcrun stapler staple gatekey.pkg
set -eu

die() {
  printf 'build-pkg.sh: error: %s\n' "$*" >&2
  exit 1
}

WHEELHOUSE=""
CONFIG=""
PYTHON=""
VERSION=""
SIGN=""
OUT=gatekey.pkg
IDENTIFIER=com.example.gatekey
while [ $# -gt 0 ]; do
  case "$1" in
    --wheelhouse) [ $# -ge 2 ] || die "$1 needs a value"; WHEELHOUSE=$2; shift 2 ;;
    --config) [ $# -ge 2 ] || die "$1 needs a value"; CONFIG=$2; shift 2 ;;
    --python) [ $# -ge 2 ] || die "$1 needs a value"; PYTHON=$2; shift 2 ;;
    --version) [ $# -ge 2 ] || die "$1 needs a value"; VERSION=$2; shift 2 ;;
    --identifier) [ $# -ge 2 ] || die "$1 needs a value"; IDENTIFIER=$2; shift 2 ;;
    --sign) [ $# -ge 2 ] || die "$1 needs a value"; SIGN=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "$1 needs a value"; OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
[ -d "$WHEELHOUSE" ] || die "--wheelhouse DIR is required (install/build-wheelhouse.sh makes one)"
[ -n "$VERSION" ] || die "--version is required (the package version MDMs compare)"
[ -z "$CONFIG" ] || [ -f "$CONFIG" ] || die "no such config file: $CONFIG"
command -v pkgbuild >/dev/null 2>&1 || die "pkgbuild not found: build the package on macOS"

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The payload is empty: everything lives in the scripts folder, and the postinstall installs it
# (a venv cannot be built on one machine and copied, its paths and interpreter are the target's).
mkdir -p "$work/root" "$work/scripts/wheelhouse"
cp "$here/install.sh" "$here/../common/install-unix.sh" "$work/scripts/"
cp "$WHEELHOUSE"/*.whl "$work/scripts/wheelhouse/"
[ -z "$CONFIG" ] || cp "$CONFIG" "$work/scripts/config.toml"

[ -z "$PYTHON" ] || printf '%s\n' "$PYTHON" >"$work/scripts/python.txt"
# The postinstall runs as root from the package's scripts folder; its output goes to
# /var/log/install.log.
cat >"$work/scripts/postinstall" <<'POSTINSTALL'
#!/bin/sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
set -- --wheelhouse "$here/wheelhouse"
[ ! -f "$here/python.txt" ] || set -- "$@" --python "$(cat "$here/python.txt")"
[ ! -f "$here/config.toml" ] || set -- "$@" --config "$here/config.toml"
exec sh "$here/install.sh" "$@"
POSTINSTALL
chmod 0755 "$work/scripts/postinstall" "$work/scripts/install.sh" "$work/scripts/install-unix.sh"

pkgbuild --root "$work/root" --scripts "$work/scripts" --identifier "$IDENTIFIER" \
  --version "$VERSION" --install-location / "$work/unsigned.pkg"
if [ -n "$SIGN" ]; then
  productsign --sign "$SIGN" "$work/unsigned.pkg" "$OUT"
else
  mv "$work/unsigned.pkg" "$OUT"
  printf 'build-pkg.sh: warning: %s is unsigned (pass --sign for a fleet)\n' "$OUT" >&2
fi
printf 'build-pkg.sh: built %s\n' "$OUT" >&2
