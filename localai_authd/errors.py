"""One small error tree. Each error knows its CLI exit code, HTTP status and stable code.

Errors become words only at the edge: authctl prints ``authctl: <message>``, the control
server answers ``{"error": {"code", "message"}}``, the daemon logs and exits with ``exit_code``.
Messages never contain secrets.
"""

from __future__ import annotations

# Exit codes (documented in README and authctl --help), sysexits(3) where one fits.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: daemon not running / keyring unavailable
EXIT_SOFTWARE = 70  # EX_SOFTWARE: internal error
EXIT_NOPERM = 77  # EX_NOPERM: not allowed to use the control socket
EXIT_CONFIG = 78  # EX_CONFIG: bad configuration


class AuthdError(Exception):
    """Base class: a failure with a stable code, a message safe to show, and where it maps."""

    code = "internal_error"
    http_status = 500
    exit_code = EXIT_SOFTWARE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AuthdError):
    code = "config_invalid"
    http_status = 400
    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(self.problems))


class UsageError(AuthdError):
    """The caller asked for something malformed (bad name, unknown field, bad duration)."""

    code = "invalid_request"
    http_status = 400
    exit_code = EXIT_USAGE


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
