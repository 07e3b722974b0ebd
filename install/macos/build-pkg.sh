#!/bin/sh
# Build a macOS installer package (.pkg) for Jamf, Kandji, Intune or any MDM: it carries a
# wheelhouse (install/build-wheelhouse.sh) and, optionally, gatekey's system config; its
# postinstall runs install/macos/jamf-gatekey.sh (the one-file installer), which creates or
# upgrades the virtual environment in "/Library/Application Support/gatekey" offline, links
# /usr/local/bin/gatekey, and leaves the uninstaller beside it:
#   sudo sh "/Library/Application Support/gatekey/uninstall-gatekey.sh" [--purge]
# which removes what the package installed and forgets its receipt (pkgutil --forget).
#
#   install/build-wheelhouse.sh --platform macosx_11_0_arm64 --python-version 3.12 --out build/wh-mac
#   install/macos/build-pkg.sh --wheelhouse build/wh-mac --config corp.toml \
#       --python /Library/Frameworks/Python.framework/Versions/3.12/bin/python3.12 \
#       --version 0.1.0 --sign "Developer ID Installer: Example Corp (TEAMID)" --out gatekey.pkg
#
# Or it wraps the self-contained bundle (install/build-bundle.sh on a Mac: no Python needed on the
# endpoints), which the postinstall checks against its SHA-256 and unpacks into
# "/Library/Application Support/gatekey/bin":
#   bash install/build-bundle.sh --out build/bundle
#   install/macos/build-pkg.sh --bundle build/bundle/gatekey-0.1.0-macos-arm64.tar.gz \
#       --config corp.toml --version 0.1.0 --sign "Developer ID Installer: …" --out gatekey.pkg
#
# With a wheelhouse, the endpoints need that Python (python.org's universal2 installer, deployed first by the MDM);
# the package holds no interpreter. Run on macOS (pkgbuild, productsign come with Xcode's tools).
# --stage DIR only writes the package's scripts folder (any OS): what the postinstall will run.
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
BUNDLE=""
CONFIG=""
PYTHON=""
VERSION=""
SIGN=""
OUT=gatekey.pkg
IDENTIFIER=com.example.gatekey
STAGE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wheelhouse) [ $# -ge 2 ] || die "$1 needs a value"; WHEELHOUSE=$2; shift 2 ;;
    --bundle) [ $# -ge 2 ] || die "$1 needs a value"; BUNDLE=$2; shift 2 ;;
    --config) [ $# -ge 2 ] || die "$1 needs a value"; CONFIG=$2; shift 2 ;;
    --python) [ $# -ge 2 ] || die "$1 needs a value"; PYTHON=$2; shift 2 ;;
    --version) [ $# -ge 2 ] || die "$1 needs a value"; VERSION=$2; shift 2 ;;
    --identifier) [ $# -ge 2 ] || die "$1 needs a value"; IDENTIFIER=$2; shift 2 ;;
    --sign) [ $# -ge 2 ] || die "$1 needs a value"; SIGN=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "$1 needs a value"; OUT=$2; shift 2 ;;
    --stage) [ $# -ge 2 ] || die "$1 needs a value"; STAGE=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
[ -n "$VERSION" ] || die "--version is required (the package version MDMs compare)"
[ -z "$CONFIG" ] || [ -f "$CONFIG" ] || die "no such config file: $CONFIG"
case "$IDENTIFIER" in *[!A-Za-z0-9.-]* | "") die "--identifier wants letters, digits, dots and dashes: $IDENTIFIER" ;; esac
sha256_file() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}
if [ -n "$BUNDLE" ]; then
  [ -z "$WHEELHOUSE$PYTHON" ] || die "--bundle brings its own Python: it takes no --wheelhouse or --python"
  [ -f "$BUNDLE" ] || die "no such bundle file: $BUNDLE"
  case "$BUNDLE" in *.tar.gz) ;; *) die "--bundle needs the .tar.gz install/build-bundle.sh writes: $BUNDLE" ;; esac
  [ -f "$BUNDLE.sha256" ] || die "no $BUNDLE.sha256 (install/build-bundle.sh writes it beside the bundle)"
  # Checked here too: a package must not carry a bundle its own checksum already refuses.
  [ "$(cut -d' ' -f1 "$BUNDLE.sha256")" = "$(sha256_file "$BUNDLE")" ] ||
    die "$BUNDLE does not match its SHA-256 ($BUNDLE.sha256); not packaged"
else
  [ -d "$WHEELHOUSE" ] || die "--wheelhouse DIR or --bundle FILE is required (install/build-wheelhouse.sh, install/build-bundle.sh)"
  ls "$WHEELHOUSE"/gatekey-*.whl >/dev/null 2>&1 || die "$WHEELHOUSE holds no gatekey wheel"
  # The postinstall installs with pip --require-hashes -r requirements.txt (every wheel's SHA-256).
  [ -f "$WHEELHOUSE/requirements.txt" ] ||
    die "$WHEELHOUSE has no requirements.txt (the SHA-256 of every wheel); build it with install/build-wheelhouse.sh"
fi
if [ -z "$STAGE" ]; then
  command -v pkgbuild >/dev/null 2>&1 || die "pkgbuild not found: build the package on macOS"
fi

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts=${STAGE:-$work/scripts}
if [ -n "$STAGE" ] && [ -e "$STAGE" ] && [ -n "$(ls -A "$STAGE")" ]; then
  die "--stage $STAGE exists and is not empty"
fi

# The payload is empty: everything lives in the scripts folder, and the postinstall installs it
# (a venv cannot be built on one machine and copied, its paths and interpreter are the target's).
mkdir -p "$work/root" "$scripts"
cp "$here/jamf-gatekey.sh" "$scripts/"
if [ -n "$BUNDLE" ]; then
  # The archive and its checksum as built: the postinstall checks one against the other.
  cp "$BUNDLE" "$scripts/bundle.tar.gz"
  cp "$BUNDLE.sha256" "$scripts/bundle.tar.gz.sha256"
else
  mkdir "$scripts/wheelhouse"
  cp "$WHEELHOUSE"/*.whl "$WHEELHOUSE/requirements.txt" "$scripts/wheelhouse/"
fi
[ -z "$CONFIG" ] || cp "$CONFIG" "$scripts/config.toml"
[ -z "$PYTHON" ] || printf '%s\n' "$PYTHON" >"$scripts/python.txt"
printf '%s\n' "$IDENTIFIER" >"$scripts/identifier.txt"
# The postinstall runs as root from the package's scripts folder, with the target volume as $3;
# its output goes to /var/log/install.log. It records the package's identifier in the
# installation, so the uninstaller left there can forget the receipt.
cat >"$scripts/postinstall" <<'POSTINSTALL'
#!/bin/sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
set -- install --root "${3:-/}" --pkg-id "$(cat "$here/identifier.txt")"
if [ -f "$here/bundle.tar.gz" ]; then
  set -- "$@" --bundle "$here/bundle.tar.gz" --sha256 "$(cut -d' ' -f1 "$here/bundle.tar.gz.sha256")"
else
  set -- "$@" --wheelhouse "$here/wheelhouse"
fi
[ ! -f "$here/python.txt" ] || set -- "$@" --python "$(cat "$here/python.txt")"
[ ! -f "$here/config.toml" ] || set -- "$@" --config "$here/config.toml"
exec sh "$here/jamf-gatekey.sh" "$@"
POSTINSTALL
chmod 0755 "$scripts/postinstall" "$scripts/jamf-gatekey.sh"
if [ -n "$STAGE" ]; then
  printf 'build-pkg.sh: staged the package scripts in %s (postinstall: sh postinstall PKG / VOLUME)\n' "$STAGE" >&2
  exit 0
fi

pkgbuild --root "$work/root" --scripts "$scripts" --identifier "$IDENTIFIER" \
  --version "$VERSION" --install-location / "$work/unsigned.pkg"
if [ -n "$SIGN" ]; then
  productsign --sign "$SIGN" "$work/unsigned.pkg" "$OUT"
else
  mv "$work/unsigned.pkg" "$OUT"
  printf 'build-pkg.sh: warning: %s is unsigned (pass --sign for a fleet)\n' "$OUT" >&2
fi
printf 'build-pkg.sh: built %s\n' "$OUT" >&2
