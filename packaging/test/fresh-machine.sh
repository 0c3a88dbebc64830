#!/bin/bash
# The README's promise, checked: on a plain Debian 12 with only python3-venv, make and git,
# `make test` from a fresh clone passes, and every test that needs more is skipped with the
# reason (what to install).
#
#   packaging/test/fresh-machine.sh [--as-root] [--ref REF] [-- PYTEST_ARGS...]
#
# A cached debootstrap root (container.sh's cache_root, its own flavour "fresh") is copied to a
# throwaway directory; the committed branch (REF, default HEAD) is cloned into it as a bare repo;
# inside the container (systemd-nspawn, not booted, sharing the host's network so that pip can
# reach the registry), an unprivileged user (root with --as-root) runs `git clone` and
# `make test`. pip there needs the host's CA bundle (the registries are reached
# through a TLS proxy only the host trusts): it is copied in and named by PIP_CERT.
#
# Needs root, debootstrap and systemd-container. Prints the pytest summary; exits with the
# status of `make test`.
set -euo pipefail

export LOG_TAG=fresh # container.sh's log() prefix
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=container.sh
source "$here/container.sh"

as_root=0
ref=HEAD
while (($#)); do
    case "$1" in
        --as-root) as_root=1 ;;
        --ref) ref=$2; shift ;;
        --) shift; break ;;
        *) echo "usage: $0 [--as-root] [--ref REF] [-- PYTEST_ARGS...]" >&2; exit 2 ;;
    esac
    shift
done
[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, systemd-nspawn)"
command -v systemd-nspawn >/dev/null && command -v debootstrap >/dev/null \
    || die "needs systemd-nspawn and debootstrap: apt-get install -y systemd-container debootstrap"

base=$(cache_root python3-venv,make,git fresh)
work=$(mktemp -d /var/tmp/localai-authd-fresh.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
root="$work/root"
cp -a --reflink=auto "$base" "$root"
rm -f "$root/.complete"

commit=$(git -C "$repo" rev-parse --verify "$ref^{commit}")
log "cloning $ref ($commit) into the container"
git clone -q --bare --no-local "$repo" "$root/srv/localai-authd.git"
git -C "$root/srv/localai-authd.git" update-ref refs/heads/under-test "$commit"
git -C "$root/srv/localai-authd.git" symbolic-ref HEAD refs/heads/under-test
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/host-ca.crt"

if ((as_root)); then
    user=root home=/root
else
    user=dev home=/home/dev
    chroot "$root" useradd --create-home --shell /bin/bash dev
    chown -R 1000:1000 "$root/srv/localai-authd.git"
    [[ $(chroot "$root" id -u dev) == 1000 ]] || die "user dev is not uid 1000"
fi

pytest_args=${*:-}
log "make test as $user (the venv is built from requirements/dev.lock: a few minutes)"
set +e
timeout 3000 systemd-nspawn -q -D "$root" -M "localai-fresh-$$" --register=no --keep-unit --as-pid2 --pipe \
    --user="$user" --chdir="$home" \
    --setenv=HOME="$home" --setenv=LANG=C.UTF-8 \
    --setenv=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --setenv=PIP_CERT=/etc/ssl/host-ca.crt --setenv=PYTEST_ARGS="$pytest_args" \
    /bin/sh -ec 'git clone -q /srv/localai-authd.git localai-authd && cd localai-authd &&
        git log --oneline -1 && make test PYTEST_ARGS="$PYTEST_ARGS"' \
    </dev/null 2>&1 | tee "$work/make-test.log"
rc=${PIPESTATUS[0]}
set -e
log "make test exited $rc; summary:"
grep -E '^(SKIPPED|FAILED|ERROR|XFAIL|XPASS) |^=+ .*(passed|failed|error).* =+$' \
    "$work/make-test.log" >&2 || true
exit "$rc"
