"""Errors the command line reports in one line, importable without importing the CLI.

Modules that orchestrate work (e.g. :mod:`flows.steps`) raise :class:`Failure`; the entry point
(:func:`flows.cli.main`) prints it as ``liqheat: error: <message>`` and exits with code 1.
"""

from __future__ import annotations


class Failure(Exception):
    """A runtime failure reported to the user in one line (exit code 1)."""
