"""Issue 14 items 9-10: ``backtest --realized FILE`` scores the file alone and stores
nothing; ``--store SOURCE`` keeps it under a name that a later ``--store`` replaces; ``realized
list`` / ``realized remove``; events stored under two sources count once; an unknown symbol is
one rule everywhere (exit 1, one line, the symbols that exist)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli import liqheat
from warehouse.reads import query, realized_liquidations


def events_csv(path: Path, n: int, *, start_minute: int = 60, usd: float = 250_000.0) -> Path:
    t0 = datetime(2026, 6, 8, tzinfo=UTC)
    lines = ["ts,side,usd"]
    for i in range(n):
        ts = t0 + timedelta(minutes=start_minute + 37 * i)
        lines.append(f"{ts.isoformat()},{'long' if i % 2 else 'short'},{usd + i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def stored(db: Path) -> dict[str, int]:
    frame = query(db, "SELECT source, count(*) AS n FROM realized_liquidations GROUP BY 1")
    return dict(zip(frame["source"].to_list(), frame["n"].to_list(), strict=True))


def test_backtest_scores_the_file_alone_and_stores_nothing(
    warehouse_db: Path, tmp_path: Path
) -> None:
    home = warehouse_db.parent
    before = stored(warehouse_db)
    runs_before = query(warehouse_db, "SELECT count(*) AS n FROM model_runs")["n"][0]
    csv = events_csv(tmp_path / "mine.csv", 40)
    result = liqheat(home, "backtest", "--symbol", "BTCUSDT", "--realized", str(csv))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "BTCUSDT: model vs baseline (mine.csv)" in out
    assert "40 of 40 events of mine.csv fall in the modelled window" in out
    assert "scored against this file alone" in out
    assert "nothing stored" in out
    assert f"home:     {home}" in out
    assert stored(warehouse_db) == before  # the file was not kept
    assert query(warehouse_db, "SELECT count(*) AS n FROM model_runs")["n"][0] == runs_before


def test_store_replaces_the_same_source_and_list_and_remove(
    warehouse_db: Path, tmp_path: Path
) -> None:
    home = warehouse_db.parent
    first = events_csv(tmp_path / "a.csv", 30)
    second = events_csv(tmp_path / "b.csv", 12, start_minute=90)
    r1 = liqheat(
        home, "backtest", "--symbol", "BTCUSDT", "--realized", str(first), "--store", "desk"
    )
    assert r1.returncode == 0, r1.stderr
    assert "stored 30 events as source 'desk'" in r1.stdout
    assert stored(warehouse_db)["desk"] == 30
    r2 = liqheat(
        home, "backtest", "--symbol", "BTCUSDT", "--realized", str(second), "--store", "desk"
    )
    assert r2.returncode == 0, r2.stderr
    assert stored(warehouse_db)["desk"] == 12  # replaced, not added
    listing = liqheat(home, "realized", "list")
    assert listing.returncode == 0, listing.stderr
    desk = [line for line in listing.stdout.splitlines() if "desk" in line]
    assert len(desk) == 1
    assert "BTCUSDT" in desk[0]
    assert " 12 " in desk[0]
    assert "csv:test" in listing.stdout
    removed = liqheat(home, "realized", "remove", "desk")
    assert removed.returncode == 0, removed.stderr
    assert "removed 12 realized liquidation(s) of source desk" in removed.stdout
    assert "desk" not in stored(warehouse_db)
    again = liqheat(home, "realized", "remove", "desk")
    assert again.returncode == 1
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == (
        "liqheat: error: no realized liquidations stored under source 'desk' (sources: csv:test)"
    )


def test_the_same_events_under_two_sources_count_once(warehouse_db: Path, tmp_path: Path) -> None:
    from flows.realized import import_realized
    from flows.settings import Settings

    settings = Settings(home=warehouse_db.parent)
    csv = events_csv(tmp_path / "dup.csv", 20)
    base = realized_liquidations(warehouse_db, "binance", "BTCUSDT").height
    import_realized(settings, "BTCUSDT", csv, source="one")
    import_realized(settings, "BTCUSDT", csv, source="two")
    assert stored(warehouse_db)["one"] == stored(warehouse_db)["two"] == 20
    assert realized_liquidations(warehouse_db, "binance", "BTCUSDT").height == base + 20


def test_the_pages_count_an_event_under_two_sources_once(
    warehouse_db: Path, tmp_path: Path
) -> None:
    """The site's realized liquidations (what its chart sums) count a doubly stored event once,
    like the model's backtest."""
    from flows.realized import import_realized
    from flows.settings import Settings
    from warehouse import reads_report

    settings = Settings(home=warehouse_db.parent)
    csv = events_csv(tmp_path / "dup.csv", 20)
    base = reads_report.realized_liquidations(warehouse_db, "binance", "BTCUSDT")
    import_realized(settings, "BTCUSDT", csv, source="one")
    import_realized(settings, "BTCUSDT", csv, source="two")
    page = reads_report.realized_liquidations(warehouse_db, "binance", "BTCUSDT")
    assert page.height == base.height + 20
    assert page["usd"].sum() == pytest.approx(
        base["usd"].sum() + sum(250_000.0 + i for i in range(20))
    )
    with reads_report.one_connection(warehouse_db):  # the site build's shared connection
        shared = reads_report.realized_liquidations(warehouse_db, "binance", "BTCUSDT")
    assert shared.height == page.height


@pytest.mark.parametrize(
    "args",
    [
        ("model", "--symbol", "NOPEUSDT"),
        ("report", "--symbol", "NOPEUSDT"),
        (
            "export",
            "--symbol",
            "NOPEUSDT",
            "--start",
            "2026-06-08",
            "--end",
            "2026-06-08",
            "--to",
            "out",
        ),
        ("backtest", "--symbol", "NOPEUSDT", "--realized", "{csv}"),
    ],
)
def test_an_unknown_symbol_is_one_rule_everywhere(
    warehouse_db: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    csv = events_csv(tmp_path / "e.csv", 3)
    result = liqheat(warehouse_db.parent, *(a.replace("{csv}", str(csv)) for a in args))
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f"liqheat: error: unknown symbol NOPEUSDT: the warehouse at {warehouse_db} has "
        "BTCUSDT, ETHUSDT"
    )
    assert not (tmp_path / "out").exists()
