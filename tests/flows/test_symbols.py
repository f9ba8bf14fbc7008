"""The symbol map: lookups both ways, contract sizes, unknown pairs, and the warehouse table."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.sources import symbols
from flows.sources.symbols import (
    SYMBOL_MAP,
    SYMBOL_MAP_SCHEMA,
    ContractSpec,
    UnknownContractSizeError,
    canonical,
    contract_size,
    contract_size_frame,
    contract_unit,
    instrument,
    symbol_map_frame,
)
from warehouse.db import migrate
from warehouse.reads import query
from warehouse.writes import write_contract_sizes, write_symbol_map


@pytest.mark.parametrize(
    ("exchange", "symbol", "name", "size", "unit"),
    [
        ("binance", "BTCUSDT", "BTCUSDT", 1.0, "base"),
        ("bybit", "BTCUSDT", "BTCUSDT", None, "base"),
        ("okx", "BTCUSDT", "BTC-USDT-SWAP", None, "base"),
        ("okx", "ETHUSDT", "ETH-USDT-SWAP", None, "base"),
        ("okx", "XRPUSDT", "XRP-USDT-SWAP", None, "base"),
        ("binance-cm", "BTCUSDT", "BTCUSD_PERP", 100.0, "quote"),
        ("binance-cm", "ETHUSDT", "ETHUSD_PERP", 10.0, "quote"),
        ("binance-cm", "XRPUSDT", "XRPUSD_PERP", 10.0, "quote"),
    ],
)
def test_known_pairs(exchange: str, symbol: str, name: str, size: float | None, unit: str) -> None:
    assert instrument(exchange, symbol) == name
    assert canonical(exchange, name) == symbol
    assert contract_unit(exchange, symbol) == unit
    if size is not None:
        assert contract_size(exchange, symbol) == size
    else:  # OKX and Bybit sizes are read from the exchange, never from memory
        with pytest.raises(UnknownContractSizeError, match="read from the exchange") as info:
            contract_size(exchange, symbol)
        assert "\n" not in str(info.value)


def test_every_entry_round_trips_and_keys_are_unique() -> None:
    keys = [(i.exchange, i.symbol) for i in SYMBOL_MAP]
    names = [(i.exchange, i.instrument) for i in SYMBOL_MAP]
    assert len(set(keys)) == len(keys)
    assert len(set(names)) == len(names)
    for inst in SYMBOL_MAP:
        assert canonical(inst.exchange, instrument(inst.exchange, inst.symbol)) == inst.symbol
        assert inst.symbol == f"{inst.base}USDT"
        assert inst.contract_size is None or inst.contract_size > 0
        assert (inst.contract_size is None) == (inst.exchange in ("okx", "bybit"))
    # every exchange maps the same canonical symbols
    assert {tuple(symbols.symbols(e)) for e in symbols.EXCHANGES} == {
        tuple(symbols.symbols("binance"))
    }


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: instrument("okx", "FOOUSDT"), "symbol 'FOOUSDT' is not mapped for exchange 'okx'"),
        (lambda: instrument("kraken", "BTCUSDT"), "unknown exchange 'kraken'"),
        (lambda: canonical("okx", "BTCUSDT"), "instrument 'BTCUSDT' is not mapped for exchange"),
        (lambda: canonical("bybit", "BTC-USDT-SWAP"), "instrument 'BTC-USDT-SWAP' is not mapped"),
        (lambda: contract_size("binance-cm", "PEPEUSDT"), "symbol 'PEPEUSDT' is not mapped"),
    ],
)
def test_unknown_pairs_raise_a_clear_value_error(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        call()  # type: ignore[operator]
    assert "\n" not in str(info.value)


def test_frame_matches_the_constant() -> None:
    frame = symbol_map_frame()
    assert frame.schema == pl.Schema(SYMBOL_MAP_SCHEMA)
    assert frame.height == len(SYMBOL_MAP)
    okx_btc = frame.filter(exchange="okx", symbol="BTCUSDT").row(0, named=True)
    assert okx_btc == {
        "exchange": "okx",
        "symbol": "BTCUSDT",
        "instrument": "BTC-USDT-SWAP",
        "base": "BTC",
        "quote": "USDT",
        "contract_size": None,  # read from OKX's instruments endpoint when staged
        "contract_unit": "base",
    }


def test_warehouse_round_trip_replaces_rows(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    frame = symbol_map_frame()
    assert write_symbol_map(db, frame) == frame.height
    assert write_symbol_map(db, frame) == frame.height  # replaces, never duplicates
    stored = query(db, "SELECT * FROM symbol_map ORDER BY exchange, symbol")
    expected = frame.sort("exchange", "symbol")
    assert stored.select(expected.columns).equals(expected)

    # a smaller map replaces the whole table
    write_symbol_map(db, frame.filter(exchange="okx"))
    assert query(db, "SELECT DISTINCT exchange FROM symbol_map")["exchange"].to_list() == ["okx"]

    # the table's checks hold: contract sizes are positive, units are base/quote
    bad = frame.head(1).with_columns(contract_unit=pl.lit("lots"))
    with pytest.raises(duckdb.ConstraintException, match="CHECK constraint"):
        write_symbol_map(db, bad)
    assert query(db, "SELECT count(*) AS n FROM symbol_map")["n"][0] == len(symbols.symbols("okx"))


def test_write_symbol_map_rejects_a_frame_with_other_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="symbol map frame needs columns"):
        write_symbol_map(tmp_path / "x.duckdb", symbol_map_frame().drop("base"))


def test_read_sizes_are_cached_with_their_day_and_survive_a_refresh(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    write_symbol_map(db, symbol_map_frame())
    read = [
        ContractSpec("okx", "BTCUSDT", 0.01, "base", date(2026, 9, 1)),
        ContractSpec("bybit", "BTCUSDT", 1.0, "base", date(2026, 9, 1)),
    ]
    assert write_contract_sizes(db, contract_size_frame(read)) == 2
    write_symbol_map(db, symbol_map_frame())  # the nightly refresh keeps what was read
    rows = query(
        db,
        "SELECT exchange, contract_size, size_read_on FROM symbol_map WHERE symbol = 'BTCUSDT' "
        "ORDER BY exchange",
    ).rows()
    assert rows == [
        ("binance", 1.0, None),
        ("binance-cm", 100.0, None),
        ("bybit", 1.0, date(2026, 9, 1)),
        ("okx", 0.01, date(2026, 9, 1)),
    ]
    # a later read replaces the cached size and its day
    later = [ContractSpec("okx", "BTCUSDT", 0.001, "base", date(2026, 10, 1))]
    write_contract_sizes(db, contract_size_frame(later))
    okx = query(
        db,
        "SELECT contract_size, size_read_on FROM symbol_map WHERE exchange = 'okx' "
        "AND symbol = 'BTCUSDT'",
    ).row(0)
    assert okx == (0.001, date(2026, 10, 1))
