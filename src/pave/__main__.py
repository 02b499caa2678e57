"""``python -m pave`` is the ``pave`` command."""

from pave.cli.main import main

main()
