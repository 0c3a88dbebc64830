"""The dispatch table and the peer rule, without a socket."""

from __future__ import annotations

import grp
import os
import pwd

import pytest

from localai_authd.control.access import authorize
from localai_authd.control.handlers import OPERATIONS, check_fields, resolve
from localai_authd.errors import MethodNotAllowed, UnknownField, UnknownOperation


@pytest.mark.parametrize(
    ("method", "path", "action", "params"),
    [
        ("GET", "/v1/status", "status", {}),
        ("GET", "/v1/keys", "list", {}),
        ("POST", "/v1/keys", "create", {}),
        ("GET", "/v1/keys/laptop", "show", {"name": "laptop"}),
        ("POST", "/v1/keys/laptop/rotate", "rotate", {"name": "laptop"}),
        ("POST", "/v1/keys/laptop/revoke", "revoke", {"name": "laptop"}),
        ("POST", "/v1/keys/laptop/import", "import", {"name": "laptop"}),
        ("POST", "/v1/reload", "reload", {}),
        # "%2F" is decoded only after matching: it cannot add path segments.
        ("GET", "/v1/keys/a%2Fb", "show", {"name": "a/b"}),
    ],
)
def test_resolve(method: str, path: str, action: str, params: dict[str, str]) -> None:
    op, got = resolve(method, path)
    assert (op.action, got) == (action, params)


def test_every_action_is_routed_once() -> None:
    actions = [op.action for op in OPERATIONS]
    assert sorted(actions) == sorted(set(actions))
    assert set(actions) == {
        "status", "list", "show", "create", "rotate", "revoke", "import", "reload",
        "token", "bind-cert", "unbind-cert", "rotate-signing-secret",
        "upstream-key-list", "upstream-key-set", "upstream-key-delete",
        "usage",
        "audit",
        "set", "suspend", "resume", "delete",
    }  # fmt: skip


def test_wrong_method_names_the_allowed_ones() -> None:
    with pytest.raises(MethodNotAllowed) as e:
        resolve("PUT", "/v1/keys")
    assert sorted(e.value.allowed) == ["GET", "POST"]


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/keys/", "/v1/keys/a/b", "/v1/keys/a/remove"])
def test_unknown_operations(path: str) -> None:
    with pytest.raises(UnknownOperation):
        resolve("GET", path)


def test_check_fields() -> None:
    op, _ = resolve("POST", "/v1/keys/x/rotate")
    check_fields(op, {"grace": "1h"})
    with pytest.raises(UnknownField, match=r"'graec'.*accepted fields: grace"):
        check_fields(op, {"graec": "1h"})


# ---- who may use the socket -------------------------------------------------------------


def test_root_and_the_daemons_own_uid_are_always_allowed() -> None:
    assert authorize(0, "", 1234) is None
    assert authorize(1234, "", 1234) is None
    assert authorize(1234, "no-such-group", 1234) is None


def test_without_an_admin_group_nobody_else() -> None:
    nobody = pwd.getpwnam("nobody")
    assert authorize(nobody.pw_uid, "", 0) == (
        f"uid {nobody.pw_uid} is not root or the daemon's own user"
    )


def test_membership_uses_the_whole_group_list_including_the_primary_gid() -> None:
    nobody = pwd.getpwnam("nobody")
    primary = grp.getgrgid(nobody.pw_gid).gr_name
    assert authorize(nobody.pw_uid, primary, 0) is None
    assert nobody.pw_gid not in os.getgrouplist("root", 0)
    root_group = grp.getgrgid(0).gr_name
    assert authorize(nobody.pw_uid, root_group, 0) == (
        f"uid {nobody.pw_uid} is not root or a member of group {root_group!r}"
    )


def test_uid_without_passwd_entry_is_refused() -> None:
    uid = 54321
    with pytest.raises(KeyError):
        pwd.getpwuid(uid)
    assert authorize(uid, grp.getgrgid(0).gr_name, 0) is not None


def test_missing_admin_group_refuses_everyone_else() -> None:
    nobody = pwd.getpwnam("nobody")
    assert authorize(nobody.pw_uid, "no-such-group", 0) is not None
