"""Checks of the run options shared by the CLI and the flows: exchanges and task runners.

One validator per thing, used by both doors: the CLI calls them before it imports Prefect (a
usage error costs no start-up) and turns their ``ValueError`` into a usage error (exit code 2);
the flows call them on their parameters (a run started from the Prefect UI or a deployment).
"""

from __future__ import annotations

from collections.abc import Sequence

from flows.sources.registry import EXCHANGES

#: where the per symbol-day staging tasks can run
TASK_RUNNERS: tuple[str, ...] = ("thread", "dask")
#: the schemes of a Dask scheduler address
DASK_SCHEMES: tuple[str, ...] = ("tcp://", "tls://", "inproc://", "ucx://")


def check_exchanges(exchanges: Sequence[str]) -> list[str]:
    """Return the chosen exchanges once each, in order (default binance); raise ``ValueError``
    for one that is not registered (:data:`flows.sources.registry.EXCHANGES`).

    Examples
    --------
    >>> check_exchanges(["okx", "binance", "okx"]), check_exchanges([])
    (['okx', 'binance'], ['binance'])
    >>> check_exchanges(["kraken"])
    Traceback (most recent call last):
    ...
    ValueError: unknown exchange 'kraken'; expected one of binance, binance-cm, bybit, okx
    """
    chosen = list(dict.fromkeys(exchanges)) or ["binance"]
    unknown = [e for e in chosen if e not in EXCHANGES]
    if unknown:
        known = ", ".join(sorted(EXCHANGES))
        raise ValueError(f"unknown exchange {unknown[0]!r}; expected one of {known}")
    return chosen


def check_task_runner(task_runner: str, dask_address: str | None) -> None:
    """Raise ``ValueError`` for an unknown runner or a malformed Dask address.

    Examples
    --------
    >>> check_task_runner("dask", "tcp://127.0.0.1:8786")
    >>> check_task_runner("ray", None)
    Traceback (most recent call last):
    ...
    ValueError: unknown task runner 'ray'; expected thread or dask
    """
    if task_runner not in TASK_RUNNERS:
        raise ValueError(f"unknown task runner {task_runner!r}; expected thread or dask")
    if dask_address is not None:
        if task_runner != "dask":
            raise ValueError(
                "a Dask address (--dask-address) needs the dask task runner (--task-runner dask)"
            )
        if not dask_address.startswith(DASK_SCHEMES):
            raise ValueError(f"bad Dask address {dask_address!r} (expected tcp://HOST:PORT)")
