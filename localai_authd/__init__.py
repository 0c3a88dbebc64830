"""localai-authd: authentication in front of local AI servers."""

__version__ = "0.1.0"
