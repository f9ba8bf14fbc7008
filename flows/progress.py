"""Progress of a pipeline run, for whoever shows it (the CLI's progress bars).

The flows call :func:`report` with ``(stage, done, total)`` as work finishes: ``"staged"``
(staging jobs finished), ``"loaded"`` (units written to the warehouse) and ``"modelled"``
((exchange, symbol) pairs modelled). Nothing listens unless a caller wraps the run in
:func:`listening`; a flow run by a deployment (``liqheat serve``) reports to no one.

Examples
--------
>>> seen = []
>>> with listening(lambda stage, done, total: seen.append((stage, done, total))):
...     report("loaded", 1, 2)
>>> report("loaded", 2, 2)  # nobody listens any more
>>> seen
[('loaded', 1, 2)]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: a listener: ``(stage, done, total)``
Listener = Callable[[str, int, int], None]

_lock = threading.Lock()
_listeners: list[Listener] = []


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send the progress of runs in this process to ``listener`` while the block runs."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def report(stage: str, done: int, total: int) -> None:
    """Tell the listeners that ``done`` of ``total`` items of ``stage`` are finished. A
    listener that fails never fails the run."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(stage, done, total)
        except Exception:  # progress is a display, never a reason to stop
            continue
