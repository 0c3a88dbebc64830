"""authctl drives the real control server from tests/control: share its fixtures."""

from tests.control.conftest import control, sock_dir, threaded

__all__ = ["control", "sock_dir", "threaded"]
