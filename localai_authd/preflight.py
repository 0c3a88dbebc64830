"""What the daemon's command line says before anything starts: a bad config file in one
line, and ``--check-config``'s verdict on the file and on the keyring backend it selects."""

from __future__ import annotations

import sys

from .config import Config
from .errors import EXIT_OK, AuthdError, ConfigError


def print_config_error(e: ConfigError) -> None:
    """One problem, one line (a script or the journal shows it whole); several as a list."""
    if len(e.problems) == 1:
        print(
            f"localai-authd: invalid configuration in {e.source}: {e.problems[0]}", file=sys.stderr
        )
        return
    print(f"localai-authd: invalid configuration in {e.source}:", file=sys.stderr)
    for p in e.problems:
        print(f"  - {p}", file=sys.stderr)


def check(cfg: Config) -> int:
    """--check-config: the file is valid (loaded already); then the keyring backend.

    The backend is resolved as startup resolves it and held to the same allow-list, but not
    opened: no secret is read or created, so the check is safe beside a live daemon and
    before the first start.
    """
    from .keys.vault import resolve_backend  # the only module that imports keyring

    try:
        backend = resolve_backend(cfg.keyring_backend)
    except AuthdError as e:
        print(f"localai-authd: {cfg.source}: keyring: {e.message}", file=sys.stderr)
        return e.exit_code
    print(f"{cfg.source}: configuration is valid; keyring backend {backend}")
    return EXIT_OK
