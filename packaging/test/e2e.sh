#!/bin/bash
# The user's whole experience with the .deb, in a REAL booted systemd (Debian 12 in
# systemd-nspawn): install with apt, enable --now, authctl as root / admin member / stranger,
# a streaming request through the gateway to a fake upstream, rotate, revoke, reload, restart,
# journal (audit lines, no secrets), watchdog, the hardening choices proven, socket activation,
# upgrade, remove, reinstall, purge.
#
#   packaging/test/e2e.sh DEB UPGRADE_DEB
#
# DEB is the package under test; UPGRADE_DEB the same tree built with a higher version.
# Needs root, systemd-container and debootstrap (packaging/test/package-stage.sh installs them).
# The Debian root is cached under $LOCALAI_AUTHD_TEST_CACHE (default /var/cache/localai-authd-test).
# Ends with "N passed, M failed"; exits non-zero if anything failed.
set -uo pipefail

export LOG_TAG=e2e # container.sh's log() prefix
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=container.sh
source "$here/container.sh"

[[ $# -eq 2 && -f "$1" && -f "$2" ]] || { echo "usage: $0 DEB UPGRADE_DEB" >&2; exit 2; }
DEB=$(readlink -f "$1")
DEB2=$(readlink -f "$2")
[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, systemd-nspawn)"

PASSED=0
FAILED=0
FAILURES=()
pass() { PASSED=$((PASSED + 1)); log "ok   $1"; }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); log "FAIL $1${2:+: $2}"; }
# check NAME CMD...: a check that may fail without stopping the run.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(tail -n 5 <<<"$out")"; fi
}
# must NAME CMD...: a step the rest depends on; stops the run on failure.
must() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(tail -n 20 <<<"$out")"; finish; fi
}
# wait_for SECONDS CMD...: polls CMD every 0.2 s until it succeeds or time runs out.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
T0=$SECONDS
declare -A PHASE_T
phase() { PHASE_T[$1]=$((SECONDS - T0)); log "---- $1"; }

finish() {
    if [[ $FAILED -gt 0 && -n "${CT_PID:-}" ]]; then
        log "journal of localai-authd (last 40 lines):"
        ct journalctl -u localai-authd --no-pager -n 40 -o short-monotonic >&2 || true
    fi
    shutdown_ct
    log "timings (s from start): $(for k in "${!PHASE_T[@]}"; do printf '%s=%s ' "$k" "${PHASE_T[$k]}"; done | tr ' ' '\n' | sort -t= -k2 -n | tr '\n' ' ')total=$((SECONDS - T0))"
    for f in "${FAILURES[@]}"; do log "failed: $f"; done
    echo "e2e: $PASSED passed, $FAILED failed"
    [[ $FAILED -eq 0 ]]
    exit $?
}
trap 'log "interrupted"; finish' INT TERM

# ---- helpers that talk to the container ---------------------------------------------------
GW=http://127.0.0.1:11435
# Every secret the test sees, one a line, kept on the host side only (remember_secret).
SECRETS_FILE=

remember_secret() { printf '%s\n' "$1" >>"$SECRETS_FILE"; }
json_field() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# http_code KEY PATH: the gateway's status for GET PATH with that bearer key ("" = none).
http_code() {
    local key=$1 path=$2
    if [[ -n "$key" ]]; then
        ct curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
            -H "Authorization: Bearer $key" "$GW$path"
    else
        ct curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$GW$path"
    fi
}
expect_code() { # expect_code WANT KEY PATH
    local got
    got=$(http_code "$2" "$3")
    [[ "$got" == "$1" ]] || { echo "HTTP $got, wanted $1"; return 1; }
}
main_pid() { ct systemctl show -p MainPID --value localai-authd; }
prop() { ct systemctl show -p "$2" --value "$1"; }
is_active() { [[ "$(ct systemctl is-active localai-authd)" == active ]]; }
authctl_create() { # authctl_create USER NAME: prints the secret
    local user=$1 name=$2
    if [[ "$user" == root ]]; then
        ct authctl --json create "$name" | json_field key
    else
        ct_as "$user" authctl --json create "$name" | json_field key
    fi
}

# ---- boot -----------------------------------------------------------------------------------
phase boot
BASE=$(cache_root) || die "no Debian root"
boot "$BASE" "localai-e2e-$$"
SECRETS_FILE="$CT_DIR/secrets" # outside the container's root: never grepped as a match
: >"$SECRETS_FILE"
chmod 600 "$SECRETS_FILE"
cp "$DEB" "$DEB2" "$CT_ROOT/root/"
install -m 0755 "$here/fake_upstream.py" "$CT_ROOT/usr/local/bin/fake-upstream"
# The checks run some of these helpers in `bash -c` subshells.
export CT_PID CONTAINER_PATH GW
export -f ct ct_as prop main_pid is_active wait_for http_code expect_code
DEB_IN=/root/$(basename "$DEB")
DEB2_IN=/root/$(basename "$DEB2")
V1=$(dpkg-deb -f "$DEB" Version)
V2=$(dpkg-deb -f "$DEB2" Version)

# ---- install --------------------------------------------------------------------------------
phase install
must "apt-get install ./$(basename "$DEB") (no network inside)" \
    ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$DEB_IN"
check "Debian's python3-aiohttp is not installed" \
    bash -c "! ct dpkg -s python3-aiohttp >/dev/null 2>&1"
check "bundled aiohttp is 3.14.x from /usr/lib/localai-authd" ct /usr/lib/localai-authd/bin/python -c \
    'import aiohttp,sys; assert aiohttp.__version__.startswith("3.14"), aiohttp.__version__; assert aiohttp.__file__.startswith("/usr/lib/localai-authd/"), aiohttp.__file__'
check "/usr/bin/localai-authd --version" bash -c "ct localai-authd --version | grep -qx 'localai-authd $V1'"
check "/usr/bin/authctl --version" bash -c "ct authctl --version | grep -q '$V1'"
# Compiled at build for /usr/bin/python3 (3.11): after both programs ran, every .pyc on disk is
# one dpkg installed (nothing was compiled at run time, nothing is unknown to dpkg).
check "byte-code shipped in the package, none made at run time" ct sh -c \
    'dpkg -L localai-authd | grep -q "/localai_authd/__pycache__/daemon.cpython-311.pyc$" &&
     test "$(find /usr/lib/localai-authd -name "*.pyc" | sort)" = "$(dpkg -L localai-authd | grep "\.pyc$" | sort)"'
check "sysusers: system user localai-authd (nologin)" \
    bash -c "ct getent passwd localai-authd | grep -q ':/usr/sbin/nologin$'"
check "sysusers: localai-authd is a member of localai-admin" \
    bash -c "ct getent group localai-admin | grep -Eq ':(.*,)?localai-authd(,|$)'"
check "credential made by postinst (0600, encrypted, no fallback drop-in)" ct sh -c \
    'c=/etc/credstore.encrypted/localai-authd.keyring-key
     test "$(stat -c %a $c)" = 600 && test "$(stat -c %s $c)" -gt 100 &&
     systemd-creds decrypt --name=localai-authd.keyring-key $c - | wc -c | grep -qx 32 &&
     ! test -e /etc/systemd/system/localai-authd.service.d/50-keyring-key-file.conf'
check "config is a conffile with the file keyring" ct sh -c \
    'dpkg-query -W -f="\${Conffiles}" localai-authd | grep -q /etc/localai-authd/config.toml &&
     grep -qx "backend = \"file\"" /etc/localai-authd/config.toml'
check "config passes --check-config" ct localai-authd --config /etc/localai-authd/config.toml --check-config
check "installed, not enabled, not started" bash -c \
    "[[ \$(ct systemctl is-enabled localai-authd) == disabled && \$(ct systemctl is-active localai-authd) == inactive ]]"
check "systemd-analyze verify: no output at all" bash -c \
    'out=$(ct systemd-analyze verify /lib/systemd/system/localai-authd.service /lib/systemd/system/localai-authd.socket 2>&1); [[ -z "$out" ]] || { echo "$out"; false; }'
SCORE=$(ct systemd-analyze security --offline=true /lib/systemd/system/localai-authd.service 2>/dev/null |
    sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
check "systemd-analyze security --offline: exposure $SCORE <= 2.0" \
    ct systemd-analyze security --offline=true --threshold=20 /lib/systemd/system/localai-authd.service
check "man pages and bash completion installed" ct sh -c \
    'test -s /usr/share/man/man8/localai-authd.8.gz && test -s /usr/share/man/man1/authctl.1.gz &&
     grep -q "complete .*authctl" /usr/share/bash-completion/completions/authctl'

# ---- start ------------------------------------------------------------------------------------
phase start
ct systemd-run --unit=fake-upstream --quiet /usr/bin/python3 /usr/local/bin/fake-upstream \
    11434 /run/fake-upstream.jsonl 5 0.4 >/dev/null
must "fake upstream answers on 127.0.0.1:11434" \
    wait_for 10 ct curl -sf --max-time 2 http://127.0.0.1:11434/
must "systemctl enable --now localai-authd" ct systemctl enable --now localai-authd
must "localai-authd is active (Type=notify READY=1)" wait_for 30 is_active
check "StatusText from the daemon" bash -c "prop localai-authd StatusText | grep -q serving"
check "/run/localai-authd is 0750 localai-authd:localai-admin, socket 0660 group localai-admin" ct sh -c \
    'test "$(stat -c "%a %U %G" /run/localai-authd)" = "750 localai-authd localai-admin" &&
     test "$(stat -c "%a %G" /run/localai-authd/control.sock)" = "660 localai-admin"'
daemon_ids() { # prints "uid gid groups..." of the daemon, groups sorted
    local pid status
    pid=$(main_pid)
    status=$(ct cat "/proc/$pid/status") || return 1
    printf '%s %s %s\n' "$(awk '/^Uid:/ {print $2}' <<<"$status")" \
        "$(awk '/^Gid:/ {print $2}' <<<"$status")" \
        "$(awk '/^Groups:/ {$1=""; print}' <<<"$status" | xargs -n1 | sort -n | xargs)"
}
want_ids() {
    local admin own
    admin=$(ct getent group localai-admin | cut -d: -f3)
    own=$(ct getent group localai-authd | cut -d: -f3)
    printf '%s %s %s\n' "$(ct id -u localai-authd)" "$admin" "$(printf '%s\n' "$admin" "$own" | sort -n | xargs)"
}
IDS=$(daemon_ids)
WANT_IDS=$(want_ids)
check "daemon runs as localai-authd, gid localai-admin, groups localai-admin + localai-authd ($IDS)" \
    test "$IDS" = "$WANT_IDS"
check "keyring opened with the credential (no keyring.key made), store 0600" ct sh -c \
    '! test -e /var/lib/localai-authd/keyring.key &&
     test "$(stat -c %a /var/lib/localai-authd)" = 700'

# ---- authctl ----------------------------------------------------------------------------------
phase authctl
# Secrets are never printed, not even on failure: only their shape is reported.
shape() { sed -E 's/[A-Za-z0-9]{8,}/<redacted>/g' <<<"$1" | head -c 300; }
ROOT_KEY=$(authctl_create root laptop) && [[ $ROOT_KEY == sk_local_* ]] && pass "authctl create as root" ||
    fail "authctl create as root" "$(shape "$ROOT_KEY")"
remember_secret "$ROOT_KEY"
ct useradd -m -s /bin/bash alice && ct usermod -aG localai-admin alice
ct useradd -m -s /bin/bash bob
ADMIN_KEY=$(authctl_create alice ci-runner) && [[ $ADMIN_KEY == sk_local_* ]] &&
    pass "authctl create as a member of localai-admin (alice)" ||
    fail "authctl create as a member of localai-admin (alice)" "$(shape "$ADMIN_KEY")"
remember_secret "$ADMIN_KEY"
check "keyring.enc is 0600 after the first write" \
    ct sh -c 'test "$(stat -c %a /var/lib/localai-authd/keyring.enc)" = 600'
BOB_OUT=$(ct_as bob authctl create intruder 2>&1)
BOB_RC=$?
if [[ $BOB_RC -ne 0 && "$BOB_OUT" == authctl:* && $(wc -l <<<"$BOB_OUT") -eq 1 ]]; then
    pass "authctl refused for a user outside localai-admin (bob: rc $BOB_RC, '$BOB_OUT')"
else
    fail "authctl refused for a user outside localai-admin" "rc $BOB_RC: $BOB_OUT"
fi
check "authctl list shows both keys" bash -c "ct authctl list | grep -q laptop && ct authctl list | grep -q ci-runner"

# ---- requests ---------------------------------------------------------------------------------
phase requests
check "no credentials: 401" expect_code 401 "" /api/tags
check "a wrong key: 401" expect_code 401 "sk-local-not-a-key" /api/tags
check "root's key: 200" expect_code 200 "$ROOT_KEY" /api/tags
STREAM=$(ct sh -c 'curl -sS -N --max-time 20 -H "Authorization: Bearer $1" \
        -H "Content-Type: application/json" -d "{\"model\":\"llama3\",\"prompt\":\"hi\"}" \
        http://127.0.0.1:11435/api/generate |
    while IFS= read -r line; do printf "%s %s\n" "$(date +%s.%N)" "$line"; done' sh "$ADMIN_KEY")
if /usr/bin/python3 - "$STREAM" <<'EOF'; then pass "streaming: 5 NDJSON chunks arrive one by one"; else fail "streaming through the gateway" "$(shape "$STREAM")"; fi
import json, sys
lines = [l.split(" ", 1) for l in sys.argv[1].splitlines() if l.strip()]
assert len(lines) == 5, f"{len(lines)} lines"
docs = [json.loads(d) for _, d in lines]
assert docs[-1]["done"] is True and not any(d["done"] for d in docs[:-1])
arrived = [float(t) for t, _ in lines]
# The upstream sends a chunk every 0.4 s; a buffering proxy would deliver them all at once.
assert arrived[-1] - arrived[0] >= 1.2, f"all chunks within {arrived[-1] - arrived[0]:.2f}s"
for (t, _), d in zip(lines, docs):
    assert float(t) - d["sent_at"] < 0.35, f"chunk delayed {float(t) - d['sent_at']:.2f}s"
EOF
check "the upstream never saw the client's credentials" ct /usr/bin/python3 -c '
import json
recs = [json.loads(l) for l in open("/run/fake-upstream.jsonl")]
assert any(r["path"] == "/api/generate" for r in recs), recs
assert all(r["authorization"] is None and r["x_api_key"] is None for r in recs), recs'

# ---- rotate / revoke ------------------------------------------------------------------------
phase rotate-revoke
NEW_ROOT_KEY=$(ct authctl --json rotate laptop --grace 1h | json_field key) &&
    pass "authctl rotate laptop --grace 1h" || fail "authctl rotate laptop --grace 1h" "$(shape "$NEW_ROOT_KEY")"
remember_secret "$NEW_ROOT_KEY"
check "after rotate: the new secret works" expect_code 200 "$NEW_ROOT_KEY" /api/tags
check "after rotate: the old one works during the grace period" expect_code 200 "$ROOT_KEY" /api/tags
NEW_ADMIN_KEY=$(ct_as alice authctl --json rotate ci-runner | json_field key) &&
    pass "authctl rotate ci-runner (no grace) as alice" || fail "authctl rotate ci-runner" "$(shape "$NEW_ADMIN_KEY")"
remember_secret "$NEW_ADMIN_KEY"
check "rotate without grace: old secret 401 at once" expect_code 401 "$ADMIN_KEY" /api/tags
check "rotate without grace: new secret 200" expect_code 200 "$NEW_ADMIN_KEY" /api/tags
check "authctl revoke laptop" ct authctl revoke laptop
check "revoked: the new secret gets 401 on the next request" expect_code 401 "$NEW_ROOT_KEY" /api/tags
check "revoked: the grace secret gets 401 too" expect_code 401 "$ROOT_KEY" /api/tags

# ---- hardening choices, proven ----------------------------------------------------------------
phase hardening
PID=$(main_pid)
# MemoryDenyWriteExecute=yes: every key operation above ran cryptography (AES-GCM, HMAC) in
# this process, under it. keyring's backend discovery imports secretstorage and so loads
# _cffi_backend, but nothing creates a cffi callback, the one thing the directive breaks.
check "running with MemoryDenyWriteExecute=yes, with cryptography loaded and in use" \
    bash -c "[[ \$(prop localai-authd MemoryDenyWriteExecute) == yes ]] &&
             ct grep -q cryptography/hazmat/bindings/_rust /proc/$PID/maps"
if ct grep -q _cffi_backend "/proc/$PID/maps"; then
    log "note: _cffi_backend is mapped in the daemon (imported via secretstorage), unused for callbacks"
fi
check "control: a cffi callback works without MemoryDenyWriteExecute" \
    ct systemd-run --quiet --wait --pipe -p User=localai-authd /usr/lib/localai-authd/bin/python -c \
    'import cffi; cffi.FFI().callback("int(int)", lambda x: x)'
check "control: the same cffi callback fails under MemoryDenyWriteExecute=yes" bash -c \
    '! ct systemd-run --quiet --wait --pipe -p User=localai-authd -p MemoryDenyWriteExecute=yes \
        /usr/lib/localai-authd/bin/python -c "import cffi; cffi.FFI().callback(\"int(int)\", lambda x: x)"'
SCORE_LIVE=$(ct systemd-analyze security localai-authd 2>/dev/null |
    sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
check "systemd-analyze security (live unit): exposure $SCORE_LIVE <= 2.0" \
    ct systemd-analyze security --threshold=20 localai-authd
# PrivateUsers=yes would map alice's uid to 65534 for SO_PEERCRED (and unmap localai-admin):
# with it the admin group is locked out; without it (the shipped unit) alice is let in.
mkdir -p "$CT_ROOT/etc/systemd/system/localai-authd.service.d"
printf '[Service]\nPrivateUsers=yes\n' >"$CT_ROOT/etc/systemd/system/localai-authd.service.d/zz-e2e.conf"
ct systemctl daemon-reload
ct systemctl restart localai-authd
check "control: with PrivateUsers=yes, alice (localai-admin) is refused" \
    bash -c '! ct_as alice authctl list'
rm -f "$CT_ROOT/etc/systemd/system/localai-authd.service.d/zz-e2e.conf"
rmdir "$CT_ROOT/etc/systemd/system/localai-authd.service.d"
ct systemctl daemon-reload
ct systemctl restart localai-authd
check "shipped unit (no PrivateUsers): alice is served" ct_as alice authctl list

# ---- socket activation ------------------------------------------------------------------------
phase socket-activation
ct systemctl stop localai-authd
ct systemctl start localai-authd.socket
check "socket unit listening, service not running" bash -c \
    "[[ \$(ct systemctl is-active localai-authd.socket) == active && \$(ct systemctl is-active localai-authd) == inactive ]]"
check "a request on the socket starts the daemon, which serves it (LISTEN_FDS)" \
    expect_code 200 "$NEW_ADMIN_KEY" /api/tags
check "the daemon was started by the socket" bash -c \
    "is_active && prop localai-authd TriggeredBy | grep -q localai-authd.socket"
ct systemctl stop localai-authd.socket localai-authd
ct systemctl start localai-authd

# ---- reload / restart -------------------------------------------------------------------------
phase reload-restart
must "active again" wait_for 30 is_active
PID=$(main_pid)
check "systemctl reload localai-authd (SIGHUP; same process, READY again)" ct systemctl reload localai-authd
check "after reload: same main PID, still active" bash -c "[[ \$(main_pid) == $PID ]] && is_active"
check "after reload: keys work" expect_code 200 "$NEW_ADMIN_KEY" /api/tags
# An admin's edit of the conffile, applied by reload (and kept by the upgrade below); the
# upstream by name also shows name resolution works inside the sandbox (no AF_NETLINK).
ct sed -i 's|^#url = "http://127.0.0.1:11434"$|url = "http://localhost:11434"|' /etc/localai-authd/config.toml
check "reload applies an edited config (upstream http://localhost:11434)" bash -c \
    "ct systemctl reload localai-authd && [[ \$(main_pid) == $PID ]] &&
     ct authctl --json status | grep -q 'http://localhost:11434' && expect_code 200 '$NEW_ADMIN_KEY' /api/tags"
check "systemctl restart localai-authd" ct systemctl restart localai-authd
check "after restart: a new main PID, active" bash -c "[[ \$(main_pid) != $PID ]] && is_active"
check "after restart: keys survive" expect_code 200 "$NEW_ADMIN_KEY" /api/tags
check "after restart: revoked stays revoked" expect_code 401 "$NEW_ROOT_KEY" /api/tags
check "after restart: authctl list still has both" bash -c \
    "ct authctl list | grep -q laptop && ct authctl list | grep -q ci-runner"

# ---- TLS beyond loopback, under the hardened unit ---------------------------------------------
# A LAN listener as the README describes it: certificate and key in /etc/localai-authd/tls, the
# key readable by the daemon's own group only. Listeners change with a restart.
phase tls
TLS_DIR="$CT_ROOT/etc/localai-authd/tls"
mkdir -p "$TLS_DIR"
if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localai-test -addext subjectAltName=DNS:localai-test,IP:127.0.0.1 \
        -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.pem" >/dev/null 2>&1; then
    ct chown root:localai-authd /etc/localai-authd/tls/server.key
    ct chmod 0640 /etc/localai-authd/tls/server.key
    ct sed -i 's|^#listen = \["127.0.0.1:11435"\]$|listen = ["127.0.0.1:11435"]|' /etc/localai-authd/config.toml
    printf '\n[[listener]]\naddress = "0.0.0.0:11443"\ntls_cert = "/etc/localai-authd/tls/server.pem"\ntls_key = "/etc/localai-authd/tls/server.key"\n' \
        >>"$CT_ROOT/etc/localai-authd/config.toml"
    check "config with a TLS listener on 0.0.0.0:11443 passes --check-config" \
        ct localai-authd --config /etc/localai-authd/config.toml --check-config
    check "restart with the TLS listener (key root:localai-authd 0640)" bash -c \
        "ct systemctl restart localai-authd && wait_for 30 is_active"
    check "HTTPS on 0.0.0.0:11443 with a key: 200; without: 401; plain HTTP still on 11435" bash -c \
        "[[ \$(ct curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert /etc/localai-authd/tls/server.pem \
               -H 'Authorization: Bearer $NEW_ADMIN_KEY' https://127.0.0.1:11443/api/tags) == 200 &&
           \$(ct curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert /etc/localai-authd/tls/server.pem \
               https://127.0.0.1:11443/api/tags) == 401 ]] && expect_code 200 '$NEW_ADMIN_KEY' /api/tags"
else
    fail "TLS: openssl on the host could not make a test certificate"
fi

# ---- journal ----------------------------------------------------------------------------------
phase journal
ct journalctl --no-pager -o cat >"$CT_DIR/journal-all.txt" 2>&1
ct journalctl -u localai-authd --no-pager -o cat >"$CT_DIR/journal.txt" 2>&1
check "journal has audit lines for requests and control actions" bash -c \
    "grep -q 'localai_authd.audit' '$CT_DIR/journal.txt' &&
     grep 'localai_authd.audit' '$CT_DIR/journal.txt' | grep -q '\"kind\":\"control\"' &&
     grep 'localai_authd.audit' '$CT_DIR/journal.txt' | grep -q '/api/generate'"
check "journal shows the reload" grep -q 'reloading configuration' "$CT_DIR/journal.txt"
check "audit file /var/log/localai-authd/audit.jsonl (0640) has the same records" ct sh -c \
    'test "$(stat -c %a /var/log/localai-authd/audit.jsonl)" = 640 &&
     grep -q "\"action\":\"revoke\"" /var/log/localai-authd/audit.jsonl'
check "no secret anywhere: whole journal, /var, /etc, /root, /tmp, /home" bash -c \
    "! grep -F -f '$SECRETS_FILE' '$CT_DIR/journal-all.txt' &&
     ! grep -rIl -F -f '$SECRETS_FILE' '$CT_ROOT/var' '$CT_ROOT/etc' '$CT_ROOT/root' '$CT_ROOT/tmp' '$CT_ROOT/home'"

# ---- watchdog ---------------------------------------------------------------------------------
phase watchdog
check "watchdog armed: WatchdogUSec=30s" bash -c "[[ \$(prop localai-authd WatchdogUSec) == 30s ]]"
# The daemon pings every WatchdogSec/2 = 15 s from its event loop; systemd stamps each ping.
# A ping later than the start proves they flow (the first stamp is the start itself).
watchdog_pinged() {
    local start last
    start=$(prop localai-authd ActiveEnterTimestampMonotonic)
    last=$(prop localai-authd WatchdogTimestampMonotonic)
    ((last - start >= 14000000))
}
check "watchdog pings arrive (WatchdogTimestamp advances >= 14 s past start)" wait_for 25 watchdog_pinged

# ---- upgrade ----------------------------------------------------------------------------------
phase upgrade
CRED_SUM=$(ct sha256sum /etc/credstore.encrypted/localai-authd.keyring-key)
STORE_SUM=$(ct sha256sum /var/lib/localai-authd/keyring.enc)
PID=$(main_pid)
check "apt-get install ./$(basename "$DEB2") (upgrade $V1 -> $V2)" \
    ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$DEB2_IN"
check "after upgrade: the running service was restarted into $V2" bash -c \
    "wait_for 30 is_active && [[ \$(main_pid) != $PID ]] && ct authctl --json status | grep -q '\"version\": *\"$V2\"'"
check "after upgrade: credential and keyring unchanged" bash -c \
    "[[ \"\$(ct sha256sum /etc/credstore.encrypted/localai-authd.keyring-key)\" == '$CRED_SUM' &&
        \"\$(ct sha256sum /var/lib/localai-authd/keyring.enc)\" == '$STORE_SUM' ]]"
check "after upgrade: keys survive" expect_code 200 "$NEW_ADMIN_KEY" /api/tags
check "after upgrade: the admin's config edit is kept" \
    ct grep -qx 'url = "http://localhost:11434"' /etc/localai-authd/config.toml
check "after upgrade: revoked stays revoked" expect_code 401 "$NEW_ROOT_KEY" /api/tags

# ---- remove, reinstall, purge -----------------------------------------------------------------
phase remove-purge
check "apt-get remove localai-authd" ct env DEBIAN_FRONTEND=noninteractive apt-get remove -y localai-authd
check "remove: service stopped, program and unit gone" ct sh -c \
    '! systemctl is-active -q localai-authd && ! test -e /usr/bin/localai-authd &&
     ! test -e /lib/systemd/system/localai-authd.service && ! test -e /usr/lib/localai-authd'
check "remove keeps keys, credential, logs, config and users" ct sh -c \
    'test -s /var/lib/localai-authd/keyring.enc && test -s /etc/credstore.encrypted/localai-authd.keyring-key &&
     test -s /var/log/localai-authd/audit.jsonl && test -e /etc/localai-authd/config.toml &&
     getent passwd localai-authd >/dev/null && getent group localai-admin >/dev/null'
check "reinstall after remove" \
    ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$DEB2_IN"
check "reinstall: still enabled; starts; the old keys work" bash -c \
    "[[ \$(ct systemctl is-enabled localai-authd) == enabled ]] && ct systemctl start localai-authd &&
     wait_for 30 is_active && expect_code 200 '$NEW_ADMIN_KEY' /api/tags"
check "apt-get purge localai-authd" ct env DEBIAN_FRONTEND=noninteractive apt-get purge -y localai-authd
# Debian's practice, documented in README.Debian: purge keeps the system users and groups.
check "purge: users and groups kept" ct sh -c \
    'getent passwd localai-authd >/dev/null && getent group localai-authd >/dev/null &&
     getent group localai-admin >/dev/null'
check "purge: state, logs, credential, config gone (the admin's own TLS files are left)" ct sh -c \
    '! test -e /var/lib/localai-authd && ! test -e /var/log/localai-authd &&
     ! test -e /etc/credstore.encrypted/localai-authd.keyring-key &&
     ! test -e /etc/localai-authd/config.toml && test "$(ls /etc/localai-authd)" = tls'
check "purge: unit gone (not loaded, no enablement links, no sysusers.d file)" ct sh -c \
    'test "$(systemctl show -p LoadState --value localai-authd)" = not-found &&
     ! ls /etc/systemd/system/*/localai-authd.* 2>/dev/null | grep -q . &&
     ! test -e /usr/lib/sysusers.d/localai-authd.conf && ! test -e /run/localai-authd'
check "purge: dpkg knows nothing of it" bash -c "! ct dpkg -s localai-authd >/dev/null 2>&1"

# ---- no systemd-creds at install: the key-file fallback -------------------------------------
# As in a chroot or an image build where `systemd-creds encrypt` cannot work: the real one
# is swapped for a stand-in that fails (apt runs maintainer scripts with its own PATH, so it
# has to be the file itself), and put back after the install.
phase fallback
CREDS_BIN="$CT_ROOT/usr/bin/systemd-creds"
mv "$CREDS_BIN" "$CREDS_BIN.e2e-real"
printf '#!/bin/sh\necho "systemd-creds: simulated failure" >&2\nexit 1\n' >"$CREDS_BIN"
chmod 0755 "$CREDS_BIN"
check "install while systemd-creds fails" \
    ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$DEB_IN"
mv -f "$CREDS_BIN.e2e-real" "$CREDS_BIN"
check "fallback: no credential, the drop-in that clears LoadCredentialEncrypted= instead" ct sh -c \
    '! test -e /etc/credstore.encrypted/localai-authd.keyring-key &&
     grep -qx "LoadCredentialEncrypted=" /etc/systemd/system/localai-authd.service.d/50-keyring-key-file.conf'
check "fallback: the daemon starts and keeps its master key in keyring.key (0600)" bash -c \
    "ct systemctl enable --now localai-authd && wait_for 30 is_active &&
     [[ \$(ct stat -c %a /var/lib/localai-authd/keyring.key) == 600 ]]"
FB_KEY=$(ct authctl --json create fallback | json_field key) && [[ $FB_KEY == sk_local_* ]] &&
    pass "fallback: authctl create" || fail "fallback: authctl create" "$(shape "$FB_KEY")"
remember_secret "$FB_KEY"
check "fallback: the key works" expect_code 200 "$FB_KEY" /api/tags
check "fallback: an upgrade keeps the key file (no credential made over an existing store)" bash -c \
    "ct env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends '$DEB2_IN' >/dev/null &&
     ! ct test -e /etc/credstore.encrypted/localai-authd.keyring-key && wait_for 30 is_active &&
     expect_code 200 '$FB_KEY' /api/tags"
check "fallback: purge removes the drop-in and the key file" bash -c \
    "ct env DEBIAN_FRONTEND=noninteractive apt-get purge -y localai-authd >/dev/null &&
     ! ct test -e /etc/systemd/system/localai-authd.service.d && ! ct test -e /var/lib/localai-authd"

# ---- the whole run ----------------------------------------------------------------------------
phase poweroff
ct journalctl --no-pager -o cat >"$CT_DIR/journal-all.txt" 2>&1
check "no secret in the journal of the whole run" bash -c "! grep -F -f '$SECRETS_FILE' '$CT_DIR/journal-all.txt'"
check "localai-authd never failed or hit its watchdog (journal)" bash -c \
    "! grep -E 'localai-authd.service: (Failed with result|Watchdog timeout|Main process exited, code=(killed|dumped))' '$CT_DIR/journal-all.txt'"
finish
