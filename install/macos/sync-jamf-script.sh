#!/bin/sh
# Copy install/common/install-unix.sh into the single-file Jamf script (jamf-gatekey.sh), between
# its heredoc markers. Run after every change to the installer; --check only says whether the
# copy is current (exit 1 if not). tests/blackbox/fleet/test_macos_packaging.py holds them equal.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
script="$here/jamf-gatekey.sh"
installer="$here/../common/install-unix.sh"
marker=GATEKEY_INSTALL_UNIX_SH

new=$(mktemp)
trap 'rm -f "$new"' EXIT
# Everything up to the opening marker line, the installer, everything from the closing marker on.
awk -v marker="$marker" -v installer="$installer" '
  state == 0 { print; if (index($0, "<<'\''" marker "'\''")) { state = 1; while ((getline line < installer) > 0) print line } next }
  state == 1 { if ($0 == marker) { print; state = 2 } next }
  { print }
' "$script" >"$new"
grep -qx "$marker" "$new" || { echo "sync-jamf-script.sh: no $marker markers in $script" >&2; exit 1; }

if [ "${1:-}" = --check ]; then
  if cmp -s "$new" "$script"; then exit 0; fi
  echo "sync-jamf-script.sh: $script does not carry the current installer; run $0" >&2
  exit 1
fi
cat "$new" >"$script"
echo "sync-jamf-script.sh: $script now carries $(basename "$installer")" >&2
