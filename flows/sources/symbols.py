"""The symbol map: canonical symbols (Binance USD-M style) <-> each exchange's instrument.

The warehouse stores every exchange's rows under the *canonical* symbol (``BTCUSDT``); each
source asks this module for its own instrument name. :data:`SYMBOL_MAP` is the one table;
migration 0004 creates the ``symbol_map`` table that mirrors it (:func:`symbol_map_frame` +
``warehouse.writes.write_symbol_map``).

Contract sizes: a quantity ``q`` reported by an exchange is ``q * contract_size`` units of
``contract_unit``:

- ``contract_unit == "base"``: ``contract_size`` is in base currency (BTC). Binance USD-M
  reports quantities in base (size 1, fixed by the archive's format). **OKX and Bybit sizes
  are read from the exchange**, never from memory: OKX's
  ``/api/v5/public/instruments?instType=SWAP`` (``ctVal`` x ``ctMult``, e.g. 0.01 BTC for
  BTC-USDT-SWAP) and Bybit's ``/v5/market/instruments-info?category=linear`` (a listed
  ``LinearPerpetual`` with this base coin trades in base units: size 1). Their entries here
  carry ``contract_size = None``; the source reads the size when it stages a unit
  (:class:`ContractSpec`), the loader caches it in ``symbol_map`` with the day it was read
  (``size_read_on``, migration 0006), and a symbol whose size the exchange does not publish is
  refused with one line (:class:`UnknownContractSizeError`).
- ``contract_unit == "quote"``: ``contract_size`` is in quote currency (USD). Binance COIN-M
  perpetuals count contracts of 100 USD (BTCUSD_PERP) or 10 USD (all others), as Binance's
  contract specification states.

Examples
--------
>>> instrument("okx", "BTCUSDT")
'BTC-USDT-SWAP'
>>> canonical("binance-cm", "ETHUSD_PERP")
'ETHUSDT'
>>> contract_size("binance-cm", "ETHUSDT")
10.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
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
    #: None: read from the exchange's instruments endpoint (see :class:`ContractSpec`)
    contract_size: float | None
    contract_unit: ContractUnit


class UnknownContractSizeError(ValueError):
    """The exchange does not publish a usable contract size for a symbol (one-line message)."""

    kind = "contract"


@dataclass(frozen=True)
class ContractSpec:
    """A contract size as read from an exchange (``read_on``: the UTC day it was read)."""

    exchange: str
    symbol: str
    contract_size: float
    contract_unit: ContractUnit
    read_on: date | None = None


def _linear(exchange: str, base: str, instrument: str, size: float | None = 1.0) -> Instrument:
    return Instrument(exchange, f"{base}USDT", instrument, base, "USDT", size, "base")


def _coin_m(base: str, usd_per_contract: float) -> Instrument:
    return Instrument(
        "binance-cm", f"{base}USDT", f"{base}USD_PERP", base, "USD", usd_per_contract, "quote"
    )


#: base assets liqheat maps on every exchange
_BASES = ("BTC", "ETH", "SOL", "BNB", "XRP", "DOGE")


def coin_m_usd_per_contract(base: str) -> float:
    """Binance COIN-M contract value in USD: 100 for BTC, 10 for every other coin.

    Examples
    --------
    >>> coin_m_usd_per_contract("BTC"), coin_m_usd_per_contract("XRP")
    (100.0, 10.0)
    """
    return 100.0 if base == "BTC" else 10.0


#: THE mapping table: every (exchange, canonical symbol) liqheat knows, with contract sizes
SYMBOL_MAP: tuple[Instrument, ...] = tuple(
    inst
    for base in _BASES
    for inst in (
        _linear("binance", base, f"{base}USDT"),
        _linear("bybit", base, f"{base}USDT", None),
        _linear("okx", base, f"{base}-USDT-SWAP", None),
        _coin_m(base, coin_m_usd_per_contract(base)),
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
#: the ``symbol_map`` columns a read contract size fills (migration 0006)
CONTRACT_SIZE_SCHEMA: dict[str, pl.DataType] = {
    **SYMBOL_MAP_SCHEMA,
    "size_read_on": pl.Date(),
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
    """Return the fixed contract size of canonical ``symbol`` on ``exchange`` (in its unit).

    Raises :class:`UnknownContractSizeError` where the size must be read from the exchange
    (OKX, Bybit: see the source's ``contract``).

    Examples
    --------
    >>> contract_size("binance-cm", "BTCUSDT"), contract_size("binance", "BTCUSDT")
    (100.0, 1.0)
    """
    size = lookup(exchange, symbol).contract_size
    if size is None:
        raise UnknownContractSizeError(
            f"{exchange} contract size of {symbol} is read from the exchange, not known offline"
        )
    return size


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
    ('okx', 'BTCUSDT', 'BTC-USDT-SWAP', 'BTC', 'USDT', None, 'base')
    """
    return pl.DataFrame(
        {name: [getattr(inst, name) for inst in SYMBOL_MAP] for name in SYMBOL_MAP_SCHEMA},
        schema=SYMBOL_MAP_SCHEMA,
    )


def contract_size_frame(specs: Sequence[ContractSpec]) -> pl.DataFrame:
    """Return ``symbol_map`` rows (with ``size_read_on``) for contract sizes read from exchanges.

    Examples
    --------
    >>> spec = ContractSpec("okx", "BTCUSDT", 0.01, "base", date(2026, 9, 1))
    >>> contract_size_frame([spec]).row(0)
    ('okx', 'BTCUSDT', 'BTC-USDT-SWAP', 'BTC', 'USDT', 0.01, 'base', datetime.date(2026, 9, 1))
    """
    rows: dict[str, list[object]] = {name: [] for name in CONTRACT_SIZE_SCHEMA}
    for spec in specs:
        inst = lookup(spec.exchange, spec.symbol)
        values = {
            "exchange": inst.exchange,
            "symbol": inst.symbol,
            "instrument": inst.instrument,
            "base": inst.base,
            "quote": inst.quote,
            "contract_size": spec.contract_size,
            "contract_unit": spec.contract_unit,
            "size_read_on": spec.read_on,
        }
        for name, value in values.items():
            rows[name].append(value)
    return pl.DataFrame(rows, schema=CONTRACT_SIZE_SCHEMA)
