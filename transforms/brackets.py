"""Exchange notional brackets (maintenance margin tables), as data, per symbol.

Each row is ``(max_notional_usd, maintenance_rate, maintenance_amount_usd, max_leverage)``,
sorted by notional: a position of notional ``N`` in the bracket ``k`` with
``cap_(k-1) < N <= cap_k`` has maintenance margin ``N * rate_k - amount_k`` and may use at most
``max_leverage_k``. The amounts make the margin continuous across bracket edges.

Sources: Binance USD-M "Leverage and margin" tables (BTCUSDT, as quoted in issue 11; ETHUSDT
follows the same first brackets up to 50x). Symbols without an entry use the model's single
``mmr``.
"""

from __future__ import annotations

from transforms.params import Bracket

__all__ = ["BRACKETS", "brackets_for"]

BRACKETS: dict[str, tuple[Bracket, ...]] = {
    "BTCUSDT": (
        (50_000.0, 0.004, 0.0, 125.0),
        (600_000.0, 0.005, 50.0, 100.0),
        (3_000_000.0, 0.0065, 950.0, 75.0),
        (12_000_000.0, 0.01, 11_450.0, 50.0),
        (70_000_000.0, 0.02, 131_450.0, 25.0),
    ),
    "ETHUSDT": (
        (50_000.0, 0.004, 0.0, 125.0),
        (600_000.0, 0.005, 50.0, 100.0),
        (3_000_000.0, 0.0065, 950.0, 75.0),
        (12_000_000.0, 0.01, 11_450.0, 50.0),
    ),
}


def brackets_for(symbol: str) -> tuple[Bracket, ...] | None:
    """The bracket table of ``symbol`` or None when liqheat has none.

    Examples
    --------
    >>> brackets_for("BTCUSDT")[0]
    (50000.0, 0.004, 0.0, 125.0)
    >>> brackets_for("NOPEUSDT") is None
    True
    """
    return BRACKETS.get(symbol.upper())
