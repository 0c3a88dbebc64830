"""Every error of the daemon, its control plane and authctl: one small tree.

Each class knows its stable ``code`` (the control socket's ``{"error": {"code"}}``), its
``http_status`` on the control socket and its ``exit_code`` for authctl and the daemon. Errors
become words only at the edge: authctl prints ``authctl: <message>`` (or the JSON error with
``--json``), the control server answers ``{"error": {"code", "message"}}``, the daemon logs and
exits with ``exit_code``. Messages never contain secrets.

The hierarchy (code, HTTP status, exit code)::

    AuthdError                      internal_error           500  70
    ├── ConfigError                 config_invalid           400  78
    ├── ControlSocketError          control_socket_unusable  500  78
    ├── UsageError                  invalid_request          400   2
    │   ├── UnknownField            unknown_field            400   2
    │   ├── InvalidJson             invalid_json             400   2
    │   ├── RequestTooLarge         request_too_large        413   2
    │   ├── RequestTimeout          request_timeout          408  69
    │   └── ClientGone              client_gone              400   2
    ├── UnknownOperation            unknown_operation        404   2
    ├── MethodNotAllowed            method_not_allowed       405   2
    ├── NotFound                    not_found                404   3
    ├── Conflict                    conflict                 409   4
    ├── PermissionDenied            permission_denied        403  77
    ├── KeyringUnavailable          keyring_unavailable      503  69
    │   └── UntrustedKeyring        keyring_untrusted        503  78
    ├── DaemonUnreachable           daemon_unreachable         -  69   (authctl's side)
    └── RemoteError                 unexpected_answer          -   1   (authctl's side)

The gateway's refusals of client requests (401/403/429/...) are another vocabulary, rendered
in the client's dialect: see ``gateway/errors.py``.
"""

from __future__ import annotations

# Exit codes, sysexits(3) where one fits. EXIT_STATUS below is their documentation: authctl's
# --help prints it, and tests hold README and the man pages to it.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: daemon not running / keyring unavailable
EXIT_SOFTWARE = 70  # EX_SOFTWARE: internal error
EXIT_NOPERM = 77  # EX_NOPERM: not allowed to use the control socket
EXIT_CONFIG = 78  # EX_CONFIG: bad configuration

EXIT_STATUS: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILURE: "any other failure",
    EXIT_USAGE: "bad usage: unknown option, or an invalid name, scope, duration or field",
    EXIT_NOT_FOUND: "no such key",
    EXIT_CONFLICT: (
        "conflict: the name is taken, the key cannot be rotated, or is not revoked (delete)"
    ),
    EXIT_UNAVAILABLE: (
        "the daemon cannot be reached (is it running?), or its keyring is unavailable"
    ),
    EXIT_SOFTWARE: "internal error in the daemon (its log has the details)",
    EXIT_NOPERM: "permission denied: run as root or as a member of the admin group",
    EXIT_CONFIG: "reload refused: the configuration on disk is invalid",
}


class AuthdError(Exception):
    """Base class: a failure with a stable code, a message safe to show, and where it maps."""

    code = "internal_error"
    http_status = 500
    exit_code = EXIT_SOFTWARE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @classmethod
    def from_wire(cls, message: str) -> AuthdError:
        """Rebuild the error from the control socket's ``{"error": {"message"}}``."""
        return cls(message)


class ConfigError(AuthdError):
    code = "config_invalid"
    http_status = 400
    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(self.problems))

    @classmethod
    def from_wire(cls, message: str) -> AuthdError:
        return cls([message])


class ControlSocketError(AuthdError):
    """The control socket cannot be created where the config says."""

    code = "control_socket_unusable"
    exit_code = EXIT_CONFIG


class UsageError(AuthdError):
    """The caller asked for something malformed (bad name, unknown field, bad duration)."""

    code = "invalid_request"
    http_status = 400
    exit_code = EXIT_USAGE


class UnknownField(UsageError):
    code = "unknown_field"


class InvalidJson(UsageError):
    code = "invalid_json"


class RequestTooLarge(UsageError):
    code = "request_too_large"
    http_status = 413


class RequestTimeout(UsageError):
    """The daemon gave up waiting for the rest of a request: to authctl, an unreachable one."""

    code = "request_timeout"
    http_status = 408
    exit_code = EXIT_UNAVAILABLE


class ClientGone(UsageError):
    """The peer hung up before its request was whole; nobody will read the answer."""

    code = "client_gone"


class UnknownOperation(AuthdError):
    code = "unknown_operation"
    http_status = 404
    exit_code = EXIT_USAGE


class MethodNotAllowed(AuthdError):
    code = "method_not_allowed"
    http_status = 405
    exit_code = EXIT_USAGE

    def __init__(self, message: str, allowed: list[str] | None = None) -> None:
        super().__init__(message)
        self.allowed = allowed or []


class NotFound(AuthdError):
    code = "not_found"
    http_status = 404
    exit_code = EXIT_NOT_FOUND


class Conflict(AuthdError):
    code = "conflict"
    http_status = 409
    exit_code = EXIT_CONFLICT


class PermissionDenied(AuthdError):
    code = "permission_denied"
    http_status = 403
    exit_code = EXIT_NOPERM


class KeyringUnavailable(AuthdError):
    """The keyring could not be opened or written: the daemon must fail closed."""

    code = "keyring_unavailable"
    http_status = 503
    exit_code = EXIT_UNAVAILABLE


class UntrustedKeyring(KeyringUnavailable):
    code = "keyring_untrusted"
    exit_code = EXIT_CONFIG


class DaemonUnreachable(AuthdError):
    """authctl's side: no daemon behind the socket, or it did not answer in time."""

    code = "daemon_unreachable"
    exit_code = EXIT_UNAVAILABLE


class RemoteError(AuthdError):
    """authctl's side: an answer it cannot place (an unknown code, or not our daemon at all)."""

    code = "unexpected_answer"
    exit_code = EXIT_FAILURE


def _tree(cls: type[AuthdError]) -> list[type[AuthdError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _tree(sub))]


def from_wire(code: str, message: str, http_status: int) -> AuthdError:
    """The error the daemon reported as ``{"error": {"code", "message"}}``, as its class.

    A code this side does not know becomes a :class:`RemoteError` that keeps it.
    """
    by_code = {c.code: c for c in _tree(AuthdError) if c.__module__ == __name__}
    err = by_code.get(code, RemoteError).from_wire(message)
    err.code = code
    err.http_status = http_status
    return err
