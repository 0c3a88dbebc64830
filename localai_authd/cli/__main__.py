"""``python -m localai_authd.cli``: authctl without the console script."""

from . import main

main()
