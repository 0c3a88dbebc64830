# shellcheck shell=bash
# A real booted systemd for the package tests: a cached debootstrap root of Debian 12, a throwaway
# copy of it booted with systemd-nspawn, and commands run inside with nsenter.
# Sourced by packaging/test/e2e.sh.
#
# Everything here is bounded: every wait has a timeout, and only the processes this file started
# (by PID) are ever signalled.

CACHE_DIR=${LOCALAI_AUTHD_TEST_CACHE:-/var/cache/localai-authd-test}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# systemd + dbus: a real PID 1; curl: the client side of the test; python3: the fake upstream (and
# the interpreter the package's bundled virtualenv runs on); procps: /bin/kill for ExecReload=
# (the package depends on it; there is no network inside to fetch it); man-db: so that
# `systemd-analyze verify` can open the units' Documentation= man pages.
INCLUDE=systemd,systemd-sysv,dbus,curl,python3,procps,man-db
CONTAINER_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf '%s [%5ss] %s\n' "${LOG_TAG:-e2e}" "$SECONDS" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# cache_root [INCLUDE [FLAVOUR]]: prints the path of the cached root, making it first if needed
# (about 35-60 s once). INCLUDE defaults to the booted-systemd list above; each FLAVOUR (default
# "minbase") keeps one root, so the package test and packaging/test/fresh-machine.sh never
# evict each other's.
cache_root() {
    local include=${1:-$INCLUDE} flavour=${2:-minbase} key root tmp
    # RECIPE: bump when the steps below change, so that cached roots are remade.
    local RECIPE=2
    key=$(printf '%s %s %s %s' "$RECIPE" "$SUITE" "$include" "$MIRROR" | sha256sum | cut -c1-12)
    root="$CACHE_DIR/$SUITE-$flavour-$key"
    if [[ -f "$root/.complete" ]]; then
        printf '%s\n' "$root"
        return 0
    fi
    mkdir -p "$CACHE_DIR"
    # Roots made for another package list are stale: drop them (each is about 250 MB).
    for old in "$CACHE_DIR/$SUITE-$flavour"-*; do
        [[ -d "$old" && "$old" != "$root" && "$old" != *.tmp.* ]] && rm -rf "$old"
    done
    tmp="$root.tmp.$$"
    rm -rf "$tmp"
    log "debootstrap $SUITE minbase (+$include) into $root (cached for later runs)"
    timeout 600 debootstrap --variant=minbase --include="$include" "$SUITE" "$tmp" "$MIRROR" \
        >"$CACHE_DIR/debootstrap-$flavour.log" 2>&1 \
        || { tail -20 "$CACHE_DIR/debootstrap-$flavour.log" >&2; die "debootstrap"; }
    # No network inside the container: drop the package lists' sources so apt never tries.
    rm -f "$tmp/etc/apt/sources.list" "$tmp"/etc/apt/sources.list.d/*
    # Make it boot quietly and fast: no getty on the console, no login prompts.
    ln -sf /dev/null "$tmp/etc/systemd/system/console-getty.service"
    ln -sf /dev/null "$tmp/etc/systemd/system/getty@.service"
    echo localai-test >"$tmp/etc/hostname"
    # What the Debian installer writes and debootstrap does not: "localhost" must resolve.
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tlocalai-test\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
        >"$tmp/etc/hosts"
    apt-get clean -o Dir="$tmp" >/dev/null 2>&1 || true
    rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
    touch "$tmp/.complete"
    mv "$tmp" "$root"
    printf '%s\n' "$root"
}

# boot ROOT NAME: copies ROOT to a throwaway dir and boots it. Sets CT_DIR, CT_ROOT, CT_NSPAWN_PID,
# CT_PID (the container's PID 1 as seen from the host).
boot() {
    local base=$1 name=$2 i
    CT_DIR=$(mktemp -d /var/tmp/localai-authd-ct.XXXXXX)
    CT_ROOT="$CT_DIR/root"
    cp -a --reflink=auto "$base" "$CT_ROOT"
    rm -f "$CT_ROOT/.complete"
    systemd-nspawn -D "$CT_ROOT" -b --register=no --keep-unit --private-network \
        --console=pipe -M "$name" </dev/null >"$CT_DIR/console.log" 2>&1 &
    CT_NSPAWN_PID=$!
    CT_PID=
    for ((i = 0; i < 100; i++)); do  # 10 s for nspawn to fork the container's init
        CT_PID=$(pgrep -P "$CT_NSPAWN_PID" -x systemd 2>/dev/null | head -1) || true
        [[ -n "$CT_PID" ]] && break
        kill -0 "$CT_NSPAWN_PID" 2>/dev/null || { cat "$CT_DIR/console.log" >&2; die "nspawn exited"; }
        sleep 0.1
    done
    [[ -n "$CT_PID" ]] || die "no systemd inside the container after 10 s"
    # is-system-running --wait answers once boot finished (running or degraded).
    for ((i = 0; i < 60; i++)); do
        if state=$(ct timeout 30 systemctl is-system-running --wait 2>/dev/null); then break; fi
        [[ "$state" == degraded ]] && break
        sleep 0.5
    done
    log "container $name booted (init pid $CT_PID): ${state:-unknown}"
}

# ct CMD...: runs CMD inside the container as root, with a clean environment.
ct() {
    nsenter -t "$CT_PID" -a env -i PATH="$CONTAINER_PATH" LANG=C.UTF-8 "$@"
}

# ct_sh 'shell code': the same through sh -c.
ct_sh() { ct sh -c "$1"; }

# ct_as USER CMD...: runs CMD as USER (with that user's groups, as a login would give them).
ct_as() {
    local user=$1
    shift
    ct setpriv --reuid="$user" --regid="$user" --init-groups env HOME=/tmp USER="$user" "$@"
}

# shutdown_ct: systemctl poweroff, then wait (bounded) for nspawn to exit; SIGKILL only our own
# nspawn if it does not. Removes the throwaway copy.
shutdown_ct() {
    local i
    [[ -n "${CT_NSPAWN_PID:-}" ]] || return 0
    if kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
        ct systemctl poweroff >/dev/null 2>&1 || true
        for ((i = 0; i < 300; i++)); do  # 30 s
            kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
            log "container did not power off in 30 s; killing nspawn $CT_NSPAWN_PID"
            kill -KILL "$CT_NSPAWN_PID" 2>/dev/null || true
        fi
    fi
    wait "$CT_NSPAWN_PID" 2>/dev/null || true
    CT_NSPAWN_PID=
    if [[ -n "${KEEP_CONTAINER:-}" ]]; then
        log "kept $CT_DIR"
    else
        rm -rf "$CT_DIR"
    fi
}
