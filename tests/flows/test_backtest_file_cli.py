"""`liqheat backtest --file`: the real dev files as they are, and one-line usage errors."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from tests.cli import liqheat, one_error_line

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FOUR_H = DATA / "btc-4h-price-oi-liquidations-2025-10-06_11-22.csv"
WHERE_DEV = sorted((DATA / "where-dev").glob("*usdt-1h-price-oi-funding-*.csv"))

needs_data = pytest.mark.skipif(
    not FOUR_H.exists() or len(WHERE_DEV) < 2, reason="../shared/data not present"
)


def _lift(text: str, label: str) -> tuple[float, float, float]:
    """(lift, lo, hi) of the ``both`` row after ``label`` in the printed report."""
    part = text[text.index(label) :]
    m = re.search(
        r"both\s+n\s+\d+\s+model [\d.]+\s+null [\d.]+\s+lift ([\d.]+) \[([\d.]+)-([\d.]+)\]", part
    )
    assert m, part
    return float(m[1]), float(m[2]), float(m[3])


@needs_data
def test_the_4h_file_prints_per_bar_scores_coverage_and_where_scores(tmp_path: Path) -> None:
    res = liqheat(tmp_path / "home", "backtest", "--file", str(FOUR_H))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "coverage 0.12 (OI of all exchanges, realized liquidations of Binance only)" in out
    ratios = re.findall(
        r"long  model .*size ratio ([\d,.e+]+)\s+at coverage 0.12: ([\d,.e+]+)", out
    )
    assert ratios, out
    full, at_cov = (float(x.replace(",", "")) for x in ratios[0])
    assert at_cov == pytest.approx(full * 0.12, rel=0.01)
    assert re.search(r"long  baseline AUC", out)
    lift, lo, hi = _lift(out, "magnet (strongest cluster touched)")
    assert lo <= lift <= hi
    assert 0.8 < lift < 1.25
    near, nlo, nhi = _lift(out, "realized USD near top-3 clusters")
    assert nlo <= near <= nhi
    assert 0.9 < near < 1.2
    for bin_ in ("0.5-1 %", "1-2 %", "2-4 %", "4-8 %"):
        assert f"    {bin_}" in out
    assert "In words: Price reached the strongest cluster within 24 h in" in out
    assert "direction: imbalance vs 24 h return corr" in out
    # an explicit coverage replaces the mapping's
    res = liqheat(tmp_path / "home", "backtest", "--file", str(FOUR_H), "--coverage", "0.5",
                  "--step", "12")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "coverage 0.5 (given)" in res.stdout
    assert "decisions every 12 h" in res.stdout
    assert not (tmp_path / "home").exists()  # no warehouse needed, none created


@needs_data
@pytest.mark.parametrize("path", WHERE_DEV, ids=lambda p: p.name[:3])
def test_the_where_dev_files_as_they_are_give_bars_only_scores(tmp_path: Path, path: Path) -> None:
    # a short slice (40 days) of the real file keeps the test fast; the columns are the file's
    short = tmp_path / path.name
    pl.read_csv(path).head(24 * 40).write_csv(short)
    res = liqheat(tmp_path / "home", "backtest", "--file", str(short), "--step", "8")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "no realized liquidations (bars only: magnet and direction scores)" in out
    assert "per-bar scores" not in out
    assert "realized USD near" not in out
    lift, lo, hi = _lift(out, "magnet (strongest cluster touched)")
    assert lo <= lift <= hi
    assert "decisions every 8 h" in out
    assert "In words: The long/short imbalance near price" in out


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text("ts,open,high,low,close,oi_usd\n2024-01-01T00:00:00,1,1,1,1,1\n")
    for args, needle in (
        (["--file", str(csv), "--symbol", "BTCUSDT"], "--file scores the file alone"),
        ([], "give --symbol and --realized, or --file"),
        (["--file", str(csv), "--coverage", "0"], "--coverage"),
        (["--file", str(csv), "--coverage", "1.5"], "--coverage"),
        (["--file", str(tmp_path / "missing.csv")], "does not exist"),
    ):
        res = liqheat(tmp_path / "home", "backtest", *args)
        assert res.returncode == 2, (args, res.stderr)
        assert needle in one_error_line(res), args


def test_bad_files_fail_with_one_line(tmp_path: Path) -> None:
    no_oi = tmp_path / "no_oi.csv"
    no_oi.write_text("ts,open,high,low,close\n2024-01-01T00:00:00,1,1,1,1\n")
    half = tmp_path / "half.csv"
    half.write_text("ts,open,high,low,close,oi_usd,long_usd\n2024-01-01T00:00:00,1,1,1,1,1,0\n")
    for path, needle in ((no_oi, "no column for oi_usd"), (half, "no column for short_usd")):
        res = liqheat(tmp_path / "home", "backtest", "--file", str(path))
        assert res.returncode == 1
        assert needle in one_error_line(res)
