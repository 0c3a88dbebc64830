#!/bin/bash
# The whole package stage, as CI runs it (as root, on Debian 12):
#   1. install the tools it needs (apt);
#   2. build the .deb from a clean export, lintian clean of errors and warnings;
#   3. check the units without booting: systemd-analyze verify (no output at all) and
#      systemd-analyze security --offline (exposure <= 2.0);
#   4. build the same tree again with a higher version, for the upgrade test;
#   5. prove the user's experience in a booted Debian 12 (packaging/test/e2e.sh).
#
#   packaging/test/package-stage.sh [--out DIR]
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
out="$here/dist"
[[ "${1:-}" == --out ]] && out=$2
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
log() { printf 'package-stage [%4ss] %s\n' "$SECONDS" "$*" >&2; }
[[ $(id -u) -eq 0 ]] || { log "needs root"; exit 1; }

log "installing the tools"
export DEBIAN_FRONTEND=noninteractive
tools=(dpkg-dev debhelper dh-virtualenv python3 python3-venv scdoc lintian git
       systemd-container debootstrap curl)
missing=()
for t in "${tools[@]}"; do
    dpkg-query -W -f='${Status}' "$t" 2>/dev/null | grep -q 'install ok installed' || missing+=("$t")
done
if ((${#missing[@]})); then
    timeout 300 apt-get update -qq
    timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/pyproject.toml" | head -1)
rm -f "$out"/localai-authd_*
log "building $version (with lintian)"
deb=$("$here/packaging/build-deb.sh" --out "$out")

log "unit checks"
"$here/packaging/test/check-units.sh" "$deb"

log "building ${version}+e2e1 for the upgrade test"
deb2=$("$here/packaging/build-deb.sh" --out "$out/upgrade" --version "${version}+e2e1" --no-lintian)

log "booted-systemd test"
"$here/packaging/test/e2e.sh" "$deb" "$deb2"
log "package stage passed"
