"""The symbol map: canonical symbols (Binance USD-M style) <-> each exchange's instrument.

The warehouse stores every exchange's rows under the *canonical* symbol (``BTCUSDT``); each
source asks this module for its own instrument name and contract size. :data:`SYMBOL_MAP` is
the one table; migration 0004 creates the ``symbol_map`` table that mirrors it
(:func:`symbol_map_frame` + ``warehouse.writes.write_symbol_map``).

Contract sizes: a quantity ``q`` reported by an exchange is ``q * contract_size`` units of
``contract_unit``:

- ``contract_unit == "base"``: ``contract_size`` is in base currency (BTC). Binance USD-M and
  Bybit linear report quantities in base already (size 1); OKX USDT swaps count contracts of
  0.01 BTC, 0.1 ETH, 1 SOL ...
- ``contract_unit == "quote"``: ``contract_size`` is in quote currency (USD). Binance COIN-M
  perpetuals count contracts of 100 USD (BTCUSD_PERP) or 10 USD (all others).

Examples
--------
>>> instrument("okx", "BTCUSDT")
'BTC-USDT-SWAP'
>>> canonical("binance-cm", "ETHUSD_PERP")
'ETHUSDT'
>>> contract_size("okx", "ETHUSDT")
0.1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

ContractUnit = Literal["base", "quote"]


@dataclass(frozen=True)
class Instrument:
    """One exchange's instrument for one canonical symbol."""

    exchange: str
    symbol: str
    instrument: str
    base: str
    quote: str
    contract_size: float
    contract_unit: ContractUnit


def _linear(exchange: str, base: str, instrument: str, size: float = 1.0) -> Instrument:
    return Instrument(exchange, f"{base}USDT", instrument, base, "USDT", size, "base")


def _coin_m(base: str, usd_per_contract: float) -> Instrument:
    return Instrument(
        "binance-cm", f"{base}USDT", f"{base}USD_PERP", base, "USD", usd_per_contract, "quote"
    )


#: (base asset, OKX contract size in base units, Binance COIN-M contract size in USD)
_ASSETS: tuple[tuple[str, float, float], ...] = (
    ("BTC", 0.01, 100.0),
    ("ETH", 0.1, 10.0),
    ("SOL", 1.0, 10.0),
    ("BNB", 0.01, 10.0),
    ("XRP", 100.0, 10.0),
    ("DOGE", 1000.0, 10.0),
)

#: THE mapping table: every (exchange, canonical symbol) liqheat knows, with contract sizes
SYMBOL_MAP: tuple[Instrument, ...] = tuple(
    inst
    for base, okx_size, cm_usd in _ASSETS
    for inst in (
        _linear("binance", base, f"{base}USDT"),
        _linear("bybit", base, f"{base}USDT"),
        _linear("okx", base, f"{base}-USDT-SWAP", okx_size),
        _coin_m(base, cm_usd),
    )
)

#: exchanges present in the map
EXCHANGES: tuple[str, ...] = tuple(dict.fromkeys(i.exchange for i in SYMBOL_MAP))

#: polars schema of :func:`symbol_map_frame` (the ``symbol_map`` table's columns)
SYMBOL_MAP_SCHEMA: dict[str, pl.DataType] = {
    "exchange": pl.String(),
    "symbol": pl.String(),
    "instrument": pl.String(),
    "base": pl.String(),
    "quote": pl.String(),
    "contract_size": pl.Float64(),
    "contract_unit": pl.String(),
}

_BY_SYMBOL: dict[tuple[str, str], Instrument] = {(i.exchange, i.symbol): i for i in SYMBOL_MAP}
_BY_INSTRUMENT: dict[tuple[str, str], Instrument] = {
    (i.exchange, i.instrument): i for i in SYMBOL_MAP
}


def _known(exchange: str) -> None:
    if exchange not in EXCHANGES:
        raise ValueError(f"unknown exchange {exchange!r}; known: {', '.join(EXCHANGES)}")


def lookup(exchange: str, symbol: str) -> Instrument:
    """Return the :class:`Instrument` of canonical ``symbol`` on ``exchange``.

    Raises
    ------
    ValueError
        When the exchange or the symbol is not in :data:`SYMBOL_MAP`.

    Examples
    --------
    >>> lookup("binance-cm", "BTCUSDT").contract_size
    100.0
    """
    _known(exchange)
    try:
        return _BY_SYMBOL[(exchange, symbol)]
    except KeyError:
        raise ValueError(f"symbol {symbol!r} is not mapped for exchange {exchange!r}") from None


def instrument(exchange: str, symbol: str) -> str:
    """Return ``exchange``'s instrument name for canonical ``symbol``.

    Examples
    --------
    >>> instrument("bybit", "BTCUSDT")
    'BTCUSDT'
    >>> instrument("binance-cm", "BTCUSDT")
    'BTCUSD_PERP'
    """
    return lookup(exchange, symbol).instrument


def canonical(exchange: str, instrument_name: str) -> str:
    """Return the canonical symbol of ``exchange``'s instrument ``instrument_name``.

    Examples
    --------
    >>> canonical("okx", "SOL-USDT-SWAP")
    'SOLUSDT'
    """
    _known(exchange)
    try:
        return _BY_INSTRUMENT[(exchange, instrument_name)].symbol
    except KeyError:
        raise ValueError(
            f"instrument {instrument_name!r} is not mapped for exchange {exchange!r}"
        ) from None


def contract_size(exchange: str, symbol: str) -> float:
    """Return the contract size of canonical ``symbol`` on ``exchange`` (in its contract unit).

    Examples
    --------
    >>> contract_size("okx", "BTCUSDT"), contract_size("bybit", "BTCUSDT")
    (0.01, 1.0)
    """
    return lookup(exchange, symbol).contract_size


def contract_unit(exchange: str, symbol: str) -> ContractUnit:
    """Return ``"base"`` or ``"quote"``: what one contract of ``symbol`` on ``exchange`` is in.

    Examples
    --------
    >>> contract_unit("binance-cm", "BTCUSDT")
    'quote'
    """
    return lookup(exchange, symbol).contract_unit


def symbols(exchange: str) -> list[str]:
    """Return the canonical symbols mapped for ``exchange``, in map order.

    Examples
    --------
    >>> symbols("okx")[:2]
    ['BTCUSDT', 'ETHUSDT']
    """
    _known(exchange)
    return [i.symbol for i in SYMBOL_MAP if i.exchange == exchange]


def symbol_map_frame() -> pl.DataFrame:
    """Return :data:`SYMBOL_MAP` as a frame with the ``symbol_map`` table's columns.

    Examples
    --------
    >>> symbol_map_frame().filter(pl.col("exchange") == "okx").row(0)
    ('okx', 'BTCUSDT', 'BTC-USDT-SWAP', 'BTC', 'USDT', 0.01, 'base')
    """
    return pl.DataFrame(
        {name: [getattr(inst, name) for inst in SYMBOL_MAP] for name in SYMBOL_MAP_SCHEMA},
        schema=SYMBOL_MAP_SCHEMA,
    )
