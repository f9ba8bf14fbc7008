"""Compiled numeric kernels (numba) used by `transforms.levels`: kept tiny and pure."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@njit(cache=True)
def _range_min_table(values: F64) -> F64:  # pragma: no cover - compiled
    n = values.shape[0]
    k_max = 1
    while (1 << k_max) < n:
        k_max += 1
    table = np.empty((k_max + 1, n))
    table[0, :] = values
    for k in range(1, k_max + 1):
        half = 1 << (k - 1)
        for i in range(n):
            a = table[k - 1, i]
            if i + half < n:
                b = table[k - 1, i + half]
                table[k, i] = a if a < b else b
            else:
                table[k, i] = a
    return table


@njit(cache=True)
def _first_crossing(values: F64, start: I64, threshold: F64) -> I64:  # pragma: no cover
    n = values.shape[0]
    q = start.shape[0]
    out = np.full(q, n, dtype=np.int64)
    if n == 0:
        return out
    suffix = np.empty(n)
    acc = np.inf
    for i in range(n - 1, -1, -1):
        if values[i] < acc:
            acc = values[i]
        suffix[i] = acc
    table = _range_min_table(values)
    k_top = table.shape[0] - 1
    for r in range(q):
        pos = start[r]
        t = threshold[r]
        if pos >= n or suffix[pos] > t:
            continue
        k = 0
        # gallop: windows [pos, pos + 2**k) of doubling size until one holds a crossing
        while table[k, pos] > t:
            pos += 1 << k
            if k < k_top:
                k += 1
        # descend inside the window
        for kk in range(k - 1, -1, -1):
            if table[kk, pos] > t:
                pos += 1 << kk
        out[r] = pos
    return out


def first_crossing_kernel(values: F64, start: I64, threshold: F64) -> I64:
    """Typed entry point of the compiled first-crossing search (see `levels.first_crossing`)."""
    out: I64 = _first_crossing(
        np.ascontiguousarray(values, dtype=np.float64),
        np.ascontiguousarray(start, dtype=np.int64),
        np.ascontiguousarray(threshold, dtype=np.float64),
    )
    return out
