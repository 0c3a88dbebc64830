"""A small client for the control socket: stdlib only, so authctl starts fast.

No aiohttp, keyring or cryptography here (a test holds authctl's imports to that). Failures
become the typed errors of :mod:`localai_authd.errors`, with messages that say what to do.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any
from urllib.parse import quote

from ..errors import (
    AuthdError,
    DaemonUnreachable,
    PermissionDenied,
    RemoteError,
    from_wire,
)

# Same default as config.DEFAULT_SOCKET (a test holds them equal); not imported from there
# because config pulls in tomllib, ipaddress and friends that authctl never needs.
DEFAULT_SOCKET = "/run/localai-authd/control.sock"
DEFAULT_TIMEOUT = 30.0
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


def key_path(name: str, action: str = "") -> str:
    """``/v1/keys/NAME[/ACTION]`` with NAME percent-encoded whole (a "/" stays inside it)."""
    path = f"/v1/keys/{quote(name, safe='')}"
    return f"{path}/{action}" if action else path


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class ControlClient:
    def __init__(self, path: str | os.PathLike[str], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The daemon's JSON answer to ``method path``; raises AuthdError on any failure."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn = _UnixConnection(self.path, self.timeout)
        try:
            try:
                conn.connect()
            except OSError as e:
                raise self._connect_error(e) from e
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read(MAX_RESPONSE_BYTES)
            status = response.status
        except TimeoutError as e:
            raise DaemonUnreachable(
                f"localai-authd at {self.path} did not answer within {self.timeout:g}s"
            ) from e
        except (OSError, http.client.HTTPException) as e:
            raise DaemonUnreachable(
                f"lost the connection to localai-authd at {self.path}: {_why(e)}"
            ) from e
        finally:
            conn.close()
        return self._decode(status, raw)

    def _connect_error(self, e: OSError) -> AuthdError:
        if isinstance(e, FileNotFoundError):
            why = "no such socket (is the daemon running?)"
        elif isinstance(e, PermissionError):
            return PermissionDenied(
                f"permission denied on {self.path}: run as root or as a member of the admin "
                "group (see README)"
            )
        elif isinstance(e, ConnectionRefusedError):
            why = "nothing is listening (is the daemon running?)"
        elif isinstance(e, TimeoutError):
            why = f"no answer within {self.timeout:g}s"
        else:
            why = _why(e)
        return DaemonUnreachable(f"cannot reach localai-authd at {self.path}: {why}")

    def _decode(self, status: int, raw: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            raise RemoteError(
                f"unexpected answer from {self.path} (HTTP {status}, not a JSON object); "
                "is it localai-authd's control socket?"
            )
        if status < 400:
            return doc
        err = doc.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            code = err.get("code")
            code = code if isinstance(code, str) else "internal_error"
            raise from_wire(code, err["message"], status)
        raise RemoteError(f"localai-authd answered HTTP {status} without an error message")


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return str(e) or type(e).__name__
