#!/bin/bash
# Build the localai-authd .deb from a clean export of the working tree (never in the tree
# itself): the tracked and new files, without .git, .venv, .state or anything .gitignore'd,
# with packaging/debian copied to debian/. Then lintian, which must report no error and no
# warning.
#
#   packaging/build-deb.sh [--out DIR] [--version VERSION] [--no-lintian] [--install-deps]
#
#   --out DIR         where the .deb and .buildinfo/.changes go (default: dist/)
#   --version V       build as version V: a copy with pyproject.toml and a new debian/changelog
#                     entry set to V (the package tests use it to prove upgrades)
#   --install-deps    apt-get install the build dependencies first
#
# Prints the path of the built .deb on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/dist"
version=
lintian=1
install_deps=
while (($#)); do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --version) version=$2; shift 2 ;;
        --no-lintian) lintian=; shift ;;
        --install-deps) install_deps=1; shift ;;
        *) echo "usage: $0 [--out DIR] [--version V] [--no-lintian] [--install-deps]" >&2; exit 2 ;;
    esac
done
log() { printf 'build-deb [%4ss] %s\n' "$SECONDS" "$*" >&2; }

# Debian's tools and Python only: pyenv's python3 on PATH breaks pybuild/dh-virtualenv.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset VIRTUAL_ENV PYTHONPATH PYTHONHOME PYENV_VERSION
export LANG=C.UTF-8 LC_ALL=C.UTF-8

if [[ -n "$install_deps" ]]; then
    missing=()
    for p in dpkg-dev debhelper dh-virtualenv python3 python3-venv scdoc lintian git; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing build dependencies: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        timeout 300 apt-get update -qq
        timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

work=$(mktemp -d /var/tmp/localai-authd-build.XXXXXX)
# KEEP_BUILD=1 keeps the export and the logs for a look.
trap '[[ -n "${KEEP_BUILD:-}" ]] && log "kept $work" || rm -rf "$work"' EXIT
src="$work/localai-authd"
mkdir -p "$src"

# The export: what `git archive` would give for a commit, but of the working tree as it is now
# (new, uncommitted files included; deleted files and ignored files left out).
log "exporting the working tree to $src"
if git -C "$here" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$here" && git ls-files -z --cached --others --exclude-standard --deduplicate \
        | while IFS= read -r -d '' f; do
              if [[ -e "$f" || -L "$f" ]]; then printf '%s\0' "$f"; fi
          done \
        | tar --null --no-recursion -T - -cf -) | tar -xf - -C "$src"
else
    tar -C "$here" --exclude=.git --exclude=.venv --exclude=.state --exclude=dist \
        --exclude=__pycache__ --exclude='*.egg-info' --exclude=build -cf - . | tar -xf - -C "$src"
fi
rm -rf "$src/debian"
cp -a "$here/packaging/debian" "$src/debian"

pkg_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$src/pyproject.toml" | head -1)
if [[ -n "$version" ]]; then
    log "setting version $version in the export"
    sed -i "s/^version = \".*\"$/version = \"$version\"/" "$src/pyproject.toml"
    if [[ -f "$src/localai_authd/__init__.py" ]]; then
        sed -i "s/^__version__ = \".*\"$/__version__ = \"$version\"/" \
            "$src/localai_authd/__init__.py"
    fi
    {
        printf 'localai-authd (%s) bookworm; urgency=medium\n\n' "$version"
        printf '  * Rebuilt as %s.\n\n' "$version"
        printf ' -- %s  %s\n\n' "$(sed -n 's/^ -- \(.*>\)  .*/\1/p' "$src/debian/changelog" | head -1)" \
            "$(date -R)"
        cat "$src/debian/changelog"
    } > "$src/debian/changelog.new"
    mv "$src/debian/changelog.new" "$src/debian/changelog"
    pkg_version=$version
fi
deb_version=$(cd "$src" && dpkg-parsechangelog -S Version)
if [[ "$deb_version" != "$pkg_version" ]]; then
    echo "debian/changelog says $deb_version but pyproject.toml says $pkg_version" >&2
    exit 1
fi

log "dpkg-buildpackage -us -uc -b ($deb_version)"
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || {
    tail -60 "$work/build.log" >&2
    log "dpkg-buildpackage failed (KEEP_BUILD=1 keeps $work/build.log)"
    exit 1
}
arch=$(dpkg --print-architecture)
deb="$work/localai-authd_${deb_version}_${arch}.deb"
[[ -f "$deb" ]] || { ls -la "$work" >&2; log "no $deb"; exit 1; }

if [[ -n "$lintian" ]]; then
    log "lintian"
    # --fail-on error,warning: any warning fails the build; overrides in
    # debian/localai-authd.lintian-overrides carry their reasons.
    if ! lintian --fail-on error,warning --display-level '>=warning' \
            "$work/localai-authd_${deb_version}_${arch}.changes" >"$work/lintian.log" 2>&1; then
        cat "$work/lintian.log" >&2
        log "lintian reported errors or warnings"
        exit 1
    fi
    cat "$work/lintian.log" >&2
fi

mkdir -p "$out"
cp "$deb" "$work"/localai-authd_"${deb_version}"_"${arch}".{buildinfo,changes} "$out"/
log "built $out/$(basename "$deb") ($(du -h "$deb" | cut -f1))"
printf '%s\n' "$out/$(basename "$deb")"
