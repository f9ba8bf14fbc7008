"""Calibrated model profiles: write one (replacing the same name) and read them back.

A profile is a named `transforms.params.ModelParams` fitted by ``liqheat calibrate`` (see
`transforms.calibrate`), with the time split it was fitted and tested on and the held-back
scores. Stored in ``model_profiles``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from warehouse import writes
from warehouse.reads import query

__all__ = ["list_profiles", "read_profile", "write_profile"]


def write_profile(
    db_path: Path,
    *,
    name: str,
    params_json: str,
    params_hash: str,
    fitted_on: str,
    train: tuple[datetime, datetime],
    test: tuple[datetime, datetime],
    size_ratio: dict[str, float],
    scores: pl.DataFrame,
) -> None:
    """Store (or replace) the profile ``name`` in one transaction."""
    row = pl.DataFrame(
        {
            "name": [name],
            "params_json": [params_json],
            "params_hash": [params_hash],
            "fitted_on": [fitted_on],
            "train_start": [train[0]],
            "train_end": [train[1]],
            "test_start": [test[0]],
            "test_end": [test[1]],
            "size_ratio_long": [size_ratio.get("long")],
            "size_ratio_short": [size_ratio.get("short")],
            "scores_json": [json.dumps(scores.to_dicts(), default=str)],
            "created_at": [datetime.now(UTC)],
        },
        schema_overrides={"size_ratio_long": pl.Float64, "size_ratio_short": pl.Float64},
    )
    writes.replace_partition(db_path, "model_profiles", {"name": name}, row)


def read_profile(db_path: Path, name: str) -> dict[str, Any] | None:
    """The stored profile ``name`` as a dict (columns of ``model_profiles``), or None."""
    if not db_path.exists():
        return None
    frame = query(db_path, "SELECT * FROM model_profiles WHERE name = ?", [name])
    return frame.row(0, named=True) if frame.height else None


def list_profiles(db_path: Path) -> pl.DataFrame:
    """Every stored profile: name, fitted_on, test window, size ratios, created_at."""
    if not db_path.exists():
        return pl.DataFrame()
    return query(
        db_path,
        "SELECT name, fitted_on, params_hash, test_start, test_end, size_ratio_long, "
        "size_ratio_short, created_at FROM model_profiles ORDER BY name",
    )
