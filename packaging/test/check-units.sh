#!/bin/bash
# Unit checks that need no booted system: the exposure score of the hardened service, from the
# unit file as the package installs it. (`systemd-analyze verify` needs the package installed,
# since it checks that ExecStart= exists and that the man pages in Documentation= open: e2e.sh
# runs it in the booted container and requires that it prints nothing at all.)
#
#   packaging/test/check-units.sh [DEB]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
unit="$here/packaging/systemd/localai-authd.service"
tmp=
if [[ $# -ge 1 ]]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    dpkg-deb -x "$1" "$tmp"
    unit="$tmp/lib/systemd/system/localai-authd.service"
    cmp -s "$unit" "$here/packaging/systemd/localai-authd.service" ||
        { echo "check-units: the packaged unit differs from packaging/systemd/" >&2; exit 1; }
fi
report=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1) || true
score=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' <<<"$report")
echo "check-units: systemd-analyze security --offline=true: exposure $score (limit 2.0)" >&2
grep '✗' <<<"$report" >&2 || true
# --threshold is in tenths: fails (non-zero) above 2.0.
systemd-analyze security --offline=true --threshold=20 --no-pager "$unit" >/dev/null
