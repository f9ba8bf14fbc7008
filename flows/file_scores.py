"""`liqheat backtest --file`: score one per-bar CSV (with or without realized liquidations).

The file is read by `flows.calibration.read_per_bar_csv` (its column mapping is in that
module's docstring and in docs/model.md); the model runs once with the shipped defaults and
`transforms.scoring.all_scores` gives the per-bar scores (when the file has realized columns)
and the where-scores. Nothing is stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl

from flows.calibration import CalibrationError, coverage_for, read_per_bar_csv

__all__ = ["FileScores", "file_score_lines", "score_file"]


@dataclass(frozen=True)
class FileScores:
    """Scores of one file: per-bar (empty without realized) and where-scores."""

    file: str
    bars: pl.DataFrame
    has_realized: bool
    coverage: float
    coverage_why: str
    per_bar: pl.DataFrame
    where: pl.DataFrame


def score_file(path: Path, *, coverage: float | None = None, step_hours: float = 4.0) -> FileScores:
    """Read ``path``, run the model once (shipped defaults) and score it.

    ``coverage`` None takes the mapping's documented coverage (`coverage_for`). Raises
    `flows.calibration.CalibrationError` (one line) on an unusable file.
    """
    from transforms.params import ModelParams
    from transforms.scoring import all_scores
    from transforms.where import WhereMethod

    data = read_per_bar_csv(path)
    columns = data.columns or {}
    has_realized = data.realized.height > 0
    why = "given"
    if coverage is None:
        coverage, why = coverage_for(columns) if has_realized else (1.0, "no realized columns")
    if data.bars.height < 2:
        raise CalibrationError(f"{path.name}: {data.bars.height} bar(s); need a history")
    scores = all_scores(
        data.bars,
        ModelParams(),
        realized=data.realized if has_realized else None,
        coverage=coverage,
        method=WhereMethod(step=timedelta(hours=step_hours)),
    )
    return FileScores(
        path.name, data.bars, has_realized, coverage, why, scores.per_bar, scores.where
    )


def _interval(lo: float, hi: float) -> str:
    return f"[{lo:.2f}-{hi:.2f}]" if math.isfinite(lo) and math.isfinite(hi) else "[n/a]"


def file_score_lines(res: FileScores) -> list[str]:
    """The report printed by ``liqheat backtest --file`` (plain text lines)."""
    from reports.where_words import where_sentences

    ts = res.bars["ts"].sort()
    first, last = ts[0], ts[-1]
    lines = [
        f"{res.file}: {res.bars.height} bars {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC, "
        + (
            f"realized liquidations: yes; coverage {res.coverage:g} ({res.coverage_why})"
            if res.has_realized
            else "no realized liquidations (bars only: magnet and direction scores)"
        )
    ]
    if res.has_realized and res.per_bar.height:
        lines.append(
            f"per-bar scores (warm-up dropped, {int(res.per_bar['bars'][0])} bars): side, method, "
            "capture AUC, top-10 % overlap, top-10 % holds, log corr, size ratio, at coverage"
        )
        for r in res.per_bar.sort("side", pl.col("method") != "model").iter_rows(named=True):
            lines.append(
                f"  {r['side']:5} {r['method']:8} AUC {r['capture_auc']:.3f}  "
                f"top10 {r['top_decile_overlap']:.2f}  holds {r['top_decile_capture']:.0%}  "
                f"log corr {r['log_corr']:+.3f}  size ratio {r['size_ratio']:,.3g}  "
                f"at coverage {r['coverage']:g}: {r['size_ratio_at_coverage']:,.3g}"
            )
    w = res.where
    if w.height == 0:
        lines.append(
            "where-scores: history too short (needs the warm-up, >= 3 days, plus a 24 h horizon "
            "and at least two decision times)"
        )
        return lines
    row0 = w.row(0, named=True)
    lines.append(
        f"where-scores: decisions every {row0['step_hours']:g} h "
        f"{row0['first_decision']:%Y-%m-%d %H:%M} .. {row0['last_decision']:%Y-%m-%d %H:%M} UTC, "
        f"horizon {row0['horizon_hours']:g} h, band 0.5-8 %, 0.25 % buckets; "
        "lift = model / same-distance null [95 % block bootstrap]"
    )
    for name, label in (("magnet", "magnet (strongest cluster touched)"),
                        ("realized_near", "realized USD near top-3 clusters")):  # fmt: skip
        part = w.filter(pl.col("name") == name)
        if not part.height:
            continue
        lines.append(f"  {label}:")
        for r in part.iter_rows(named=True):
            where = r["side"] if r["bin"] == "all" else f"{r['bin']}"
            lines.append(
                f"    {where:8} n {r['n']:5}  model {r['model']:.3f}  null {r['null']:.3f}  "
                f"lift {r['lift']:.3f} {_interval(r['lo'], r['hi'])}"
            )
    corr = w.filter(pl.col("name") == "direction_corr").row(0, named=True)
    agree = w.filter(pl.col("name") == "direction_agree").row(0, named=True)
    lines.append(
        f"  direction: imbalance vs {corr['horizon_hours']:g} h return corr {corr['model']:+.3f} "
        f"[{corr['lo']:+.2f}..{corr['hi']:+.2f}]; toward the bigger pool "
        f"{agree['model']:.3f} [{agree['lo']:.2f}-{agree['hi']:.2f}] of {agree['n']} decisions"
    )
    lines += [f"In words: {s}" for s in where_sentences(w)]
    return lines
