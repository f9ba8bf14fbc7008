"""The symbol map: lookups both ways, contract sizes, unknown pairs, and the warehouse table."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.sources import symbols
from flows.sources.symbols import (
    SYMBOL_MAP,
    SYMBOL_MAP_SCHEMA,
    canonical,
    contract_size,
    contract_unit,
    instrument,
    symbol_map_frame,
)
from warehouse.db import migrate
from warehouse.reads import query
from warehouse.writes import write_symbol_map


@pytest.mark.parametrize(
    ("exchange", "symbol", "name", "size", "unit"),
    [
        ("binance", "BTCUSDT", "BTCUSDT", 1.0, "base"),
        ("bybit", "BTCUSDT", "BTCUSDT", 1.0, "base"),
        ("okx", "BTCUSDT", "BTC-USDT-SWAP", 0.01, "base"),
        ("okx", "ETHUSDT", "ETH-USDT-SWAP", 0.1, "base"),
        ("okx", "SOLUSDT", "SOL-USDT-SWAP", 1.0, "base"),
        ("binance-cm", "BTCUSDT", "BTCUSD_PERP", 100.0, "quote"),
        ("binance-cm", "ETHUSDT", "ETHUSD_PERP", 10.0, "quote"),
    ],
)
def test_known_pairs(exchange: str, symbol: str, name: str, size: float, unit: str) -> None:
    assert instrument(exchange, symbol) == name
    assert canonical(exchange, name) == symbol
    assert contract_size(exchange, symbol) == size
    assert contract_unit(exchange, symbol) == unit


def test_every_entry_round_trips_and_keys_are_unique() -> None:
    keys = [(i.exchange, i.symbol) for i in SYMBOL_MAP]
    names = [(i.exchange, i.instrument) for i in SYMBOL_MAP]
    assert len(set(keys)) == len(keys)
    assert len(set(names)) == len(names)
    for inst in SYMBOL_MAP:
        assert canonical(inst.exchange, instrument(inst.exchange, inst.symbol)) == inst.symbol
        assert inst.symbol == f"{inst.base}USDT"
        assert inst.contract_size > 0
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
        "contract_size": 0.01,
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
