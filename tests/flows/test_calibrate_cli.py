"""`liqheat calibrate` on the real 4h file: the time-split table, a stored profile, and its use."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse.profiles import list_profiles, read_profile
from warehouse.reads import query

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT.parent / "shared" / "data" / "btc-4h-price-oi-liquidations-2025-10-06_11-22.csv"


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIQHEAT_HOME": str(home), "PREFECT_HOME": str(home / "prefect"),
           "COLUMNS": "160"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.skipif(not DEV.exists(), reason="needs ../shared/data")
def test_calibrate_the_real_4h_file_prints_the_split_and_stores_a_profile(tmp_path: Path) -> None:
    out = run_cli("calibrate", "--file", str(DEV), "--name", "btc4h", home=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "held back 2025-11-" in text
    for split in ("train", "test"):
        for method in ("fitted", "defaults", "baseline"):
            assert any(split in line and method in line for line in text.splitlines()), (
                split, method,
            )  # fmt: skip
    assert "size on the held-back part" in text
    db = tmp_path / "liqheat.duckdb"
    row = read_profile(db, "btc4h")
    assert row is not None
    assert row["fitted_on"] == f"file:{DEV.name}"
    assert row["train_end"] < row["test_start"]
    assert list_profiles(db)["name"].to_list() == ["btc4h"]
    # using it: a profile that does not exist is one line, exit 1, naming the stored ones
    bad = run_cli("model", "--profile", "nope", home=tmp_path)
    assert bad.returncode == 1
    assert "no model profile 'nope'" in bad.stderr
    assert "btc4h" in bad.stderr


def test_calibrate_usage_and_bad_files(tmp_path: Path) -> None:
    neither = run_cli("calibrate", home=tmp_path)
    assert neither.returncode == 2
    assert "exactly one of --symbol or --file" in neither.stderr
    csv = tmp_path / "x.csv"
    csv.write_text("when,open,high,low,close\n1,1,1,1,1\n", encoding="utf-8")
    bad = run_cli("calibrate", "--file", str(csv), home=tmp_path)
    assert bad.returncode == 1
    assert "no column for ts, oi_usd, long_usd, short_usd" in bad.stderr
    assert "header: when,open,high,low,close" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_calibrate_a_warehouse_symbol_and_run_with_its_profile(
    demo_home: Path, tmp_path: Path
) -> None:
    """On the demo warehouse (synthetic bars and realized liquidations): fit BTCUSDT, store the
    profile, rerun the model with it; the run stores under the profile's hash, so its
    predictions appear scaled in v_calibrated_predictions."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(demo_home / "liqheat.duckdb", home / "liqheat.duckdb")
    fit = run_cli("calibrate", "--symbol", "BTCUSDT", "--days", "2", home=home)
    assert fit.returncode == 0, fit.stderr
    assert "binance:BTCUSDT" in fit.stdout
    db = home / "liqheat.duckdb"
    row = read_profile(db, "BTCUSDT")
    assert row is not None
    assert '"brackets":[[50000.0' in row["params_json"]  # fitted from the symbol's defaults
    run = run_cli("model", "--symbol", "BTCUSDT", "--profile", "BTCUSDT", home=home)
    assert run.returncode == 0, run.stderr
    scaled = query(
        db,
        "SELECT count(*) AS n, sum(raw_long_usd) / nullif(sum(long_usd), 0) AS ratio "
        "FROM v_calibrated_predictions WHERE symbol = 'BTCUSDT'",
    ).row(0, named=True)
    assert scaled["n"] > 0
    assert scaled["ratio"] == pytest.approx(row["size_ratio_long"])
