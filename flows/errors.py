"""Errors the command line reports in one line, importable without importing the CLI.

Modules that orchestrate work (e.g. :mod:`flows.modelling`) raise :class:`Failure`; the entry point
(:func:`flows.cli.main`) prints it as ``liqheat: error: <message>`` and exits with code 1.
"""

from __future__ import annotations


class Failure(Exception):
    """A runtime failure reported to the user in one line (exit code 1)."""


def first_line(exc: BaseException) -> str:
    """The exception's type and the first line of its message (at most 200 characters), for a
    one-line report of a step that failed while the others went on.

    Examples
    --------
    >>> first_line(ValueError("bad bars" + chr(10) + "more detail"))
    'ValueError: bad bars'
    >>> first_line(KeyError())
    'KeyError'
    """
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
