"""``python -m flows.cli``: the ``liqheat`` command."""

from flows.cli import main

main()
