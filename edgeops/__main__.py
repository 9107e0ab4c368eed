"""``python -m edgeops``: the same as the ``edgeops`` command."""

from .cli import main

main()
