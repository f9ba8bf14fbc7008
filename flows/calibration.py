"""`liqheat calibrate`: read a realized history (warehouse or CSV), fit a profile, store it.

Also resolves which model parameters a run uses (`resolve_params`): explicit parameters, else
the profile named by ``LIQHEAT_MODEL_PROFILE``, else the shipped defaults; then the symbol's
notional brackets (`transforms.brackets`) when the parameters carry none.

The per-bar file of ``liqheat calibrate --file`` and ``liqheat backtest --file`` (CSV or
Parquet) is read by the one per-bar reader, :func:`transforms.importing.bar_table` (the columns
``liqheat import`` reads, every accepted name in docs/importing.md; times in epoch s/ms or
ISO-8601): ts, OHLC and open interest in USD, optional volume and funding rate, and realized
long/short USD per bar (required by ``calibrate``; optional for ``backtest --file``, which then
gives the bars-only where-scores).

OI is taken as given on each row (a file that stamps OI at the bar's close is read as is: the
scores use a bar only after it closed).

The real 4h file in ``../shared/data`` maps as open_time_ms, OHLC, volume,
open_interest_usd_all_exchanges, liquidated_long_usd_binance, liquidated_short_usd_binance;
the where-dev files as open_time_ms, OHLC, volume, oi_usd, funding_rate (no realized).

Coverage (`coverage_for`): the share of the OI's market that the realized feed covers. A
file whose OI column says ``all_exchanges`` and whose realized columns end in ``_binance`` (the
4h file: all-exchange BTC OI, Binance's realized liquidations; Binance held roughly 10-15 % of
BTC open interest in late 2025) gets ``BINANCE_OF_ALL_COVERAGE`` = 0.12; any other file 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from flows.settings import Settings
from warehouse import profiles, reads

__all__ = [
    "CalibrationInput",
    "coverage_for",
    "read_calibration_csv",
    "read_per_bar_csv",
    "resolve_params",
]

_REALIZED = ("long_usd", "short_usd")
_REALIZED_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "long_usd": pl.Float64(),
    "short_usd": pl.Float64(),
}

#: assumed share of all-exchange BTC OI held by Binance (late 2025: roughly 10-15 %)
BINANCE_OF_ALL_COVERAGE = 0.12


class CalibrationError(ValueError):
    """A calibration input that cannot be used (one line for the user)."""


@dataclass(frozen=True)
class CalibrationInput:
    """Bars (model input) and realized liquidations per bar, plus where they came from."""

    bars: pl.DataFrame
    realized: pl.DataFrame
    fitted_on: str
    symbol: str | None = None
    #: role -> the CSV column it was read from (files only)
    columns: dict[str, str] | None = None


def read_calibration_csv(path: Path, mapping: dict[str, str] | None = None) -> CalibrationInput:
    """Read one per-bar file with realized columns (see the module docstring); ``mapping``
    overrides columns by role (``--map``)."""
    return read_per_bar_csv(path, need_realized=True, mapping=mapping)


def read_per_bar_csv(
    path: Path, *, need_realized: bool = False, mapping: dict[str, str] | None = None
) -> CalibrationInput:
    """Read one per-bar CSV or Parquet file (see the module docstring); ``realized`` is empty
    (no rows) when the file has no realized columns and ``need_realized`` is False."""
    from flows.importing import ImportFileError, read_table
    from transforms.importing import ImportDataError, bar_table, column_mapping

    try:
        raw, row_base = read_table(path)
        picked = column_mapping(raw.columns, mapping)
        with_realized = need_realized or any(r in picked for r in _REALIZED)
        table = bar_table(
            raw,
            mapping,
            require=(
                "open",
                "high",
                "low",
                "close",
                "oi_usd",
                *(_REALIZED if with_realized else ()),
            ),
            row_base=row_base,
        )
    except (ImportFileError, ImportDataError) as exc:
        text = str(exc)
        raise CalibrationError(
            text if text.startswith(path.name) else f"{path.name}: {text}"
        ) from exc
    bars = table.bars
    keep = [
        c
        for c in ("volume", "taker_buy_volume", "funding_rate", "oi_base", "mark_high", "mark_low")
        if c in bars.columns
    ]
    realized = (
        bars.select("ts", *[pl.col(c).fill_null(0.0) for c in _REALIZED])
        if with_realized
        else pl.DataFrame(schema=_REALIZED_SCHEMA)
    )
    return CalibrationInput(
        bars=bars.select("ts", "open", "high", "low", "close", *keep, "oi_usd"),
        realized=realized,
        fitted_on=f"file:{path.name}",
        columns=table.mapping,
    )


def coverage_for(columns: dict[str, str]) -> tuple[float, str]:
    """The documented coverage of a file's column mapping, and why (see the module docstring).

    Examples
    --------
    >>> coverage_for({"oi_usd": "open_interest_usd_all_exchanges",
    ...               "long_usd": "liquidated_long_usd_binance"})
    (0.12, 'OI of all exchanges, realized liquidations of Binance only')
    >>> coverage_for({"oi_usd": "oi_usd"})
    (1.0, 'OI and realized liquidations of the same market')
    """
    oi = columns.get("oi_usd", "").lower()
    real = columns.get("long_usd", "").lower()
    if "all_exchanges" in oi and real.endswith("_binance"):
        return BINANCE_OF_ALL_COVERAGE, "OI of all exchanges, realized liquidations of Binance only"
    return 1.0, "OI and realized liquidations of the same market"


def warehouse_input(
    settings: Settings, symbol: str, exchange: str, days: int | None
) -> CalibrationInput:
    """The symbol's warehouse bars and stored realized liquidations (per bar)."""
    from transforms.realized import realized_per_bar

    db = settings.db_path
    last = reads.last_bar_ts(db, exchange, symbol)
    if last is None:
        raise CalibrationError(f"no bars for {exchange}:{symbol} in {db}; ingest it first")
    end = last + reads.bar_size(db, exchange, symbol)
    start = end - timedelta(days=days or settings.model_days)
    bars = reads.model_bars(db, exchange, symbol, start, end)
    events = reads.realized_liquidations(db, exchange, symbol, start, end)
    if events.height == 0:
        raise CalibrationError(
            f"no realized liquidations stored for {exchange}:{symbol} in the window; "
            "import some with `liqheat backtest --realized FILE` or pass --file"
        )
    realized = realized_per_bar(events.select("ts", "side", "usd"), bars)
    return CalibrationInput(
        bars=bars, realized=realized, fitted_on=f"{exchange}:{symbol}", symbol=symbol
    )


def resolve_params(settings: Settings, symbol: str, params: Any = None) -> Any:
    """The parameters a run of ``symbol`` uses (explicit > LIQHEAT_MODEL_PROFILE > defaults),
    with the symbol's notional brackets filled in when they carry none."""
    from transforms.brackets import brackets_for
    from transforms.params import ModelParams

    if params is None and settings.model_profile:
        params = profile_params(settings, settings.model_profile)
    params = params or ModelParams()
    if params.brackets is None and params.leverages is None:
        table = brackets_for(symbol)
        if table is not None:
            params = ModelParams.model_validate({**params.model_dump(), "brackets": table})
    return params


def profile_params(settings: Settings, name: str) -> Any:
    """The stored profile ``name`` as ModelParams; a clear error naming the stored ones."""
    from transforms.params import ModelParams

    row = profiles.read_profile(settings.db_path, name)
    if row is None:
        known = profiles.list_profiles(settings.db_path)
        names = ", ".join(known["name"].to_list()) if known.height else "none"
        raise CalibrationError(
            f"no model profile {name!r} in {settings.db_path} (stored: {names}); "
            "create one with `liqheat calibrate`"
        )
    return ModelParams.model_validate_json(row["params_json"])


def run_calibration(
    settings: Settings,
    data: CalibrationInput,
    *,
    name: str | None,
    train_share: float,
    seed: int,
    store: bool = True,
) -> tuple[Any, list[str]]:
    """Fit, store the profile (unless ``store`` is False) and return (rich table, lines)."""
    from rich.table import Table

    from transforms.calibrate import calibrate
    from transforms.params import ModelParams

    # fitted on a symbol: start from its resolved defaults (its brackets), so runs made with the
    # profile store under the profile's own params hash (see v_calibrated_predictions)
    base = resolve_params(settings, data.symbol, ModelParams()) if data.symbol else ModelParams()
    cal = calibrate(data.bars, data.realized, base=base, train_share=train_share, seed=seed)
    fmt = "%Y-%m-%d %H:%M"
    table = Table(
        title=(
            f"{data.fitted_on}: fit on {cal.train[0]:{fmt}} .. {cal.train[1]:{fmt}}, "
            f"held back {cal.test[0]:{fmt}} .. {cal.test[1]:{fmt}} UTC"
        )
    )
    headers = (
        "split", "method", "side", "bars", "AUC", "top10 overlap", "top10 holds", "log corr",
        "size",
    )  # fmt: skip
    for col in headers:
        table.add_column(col, justify="left" if col in ("split", "method", "side") else "right")
    for r in cal.table.iter_rows(named=True):
        table.add_row(
            r["split"], r["method"], r["side"], str(r["bars"]),
            f"{r['capture_auc']:.3f}", f"{r['top_decile_overlap']:.2f}",
            f"{r['top_decile_capture']:.0%}", f"{r['log_corr']:.3f}", f"{r['size_ratio']:.3g}",
        )  # fmt: skip
    fitted = cal.params
    hl = fitted.turnover_half_life_hours or 0.0
    lines = [
        f"fitted: half-life {hl:g} h, leverage median {fitted.leverage_median:g}x, "
        f"width {fitted.leverage_sigma:g}, on settings {fitted.leverage_setting_share:g}, "
        f"side tilt {fitted.side_tilt:+g} "
        f"({cal.evaluations} parameter sets tried, train mean AUC {cal.objective:.3f})",
        "size on the held-back part: predicted / realized USD = "
        f"long {cal.size_ratio.get('long', float('nan')):.3g}, "
        f"short {cal.size_ratio.get('short', float('nan')):.3g} "
        f"(book = {fitted.leveraged_share:g} of OI leveraged x "
        f"{1 - fitted.closed_before_liquidation:g} not closed before liquidation; realized "
        "feeds are throttled and may cover fewer venues than the OI, so the true ratio is lower)",
    ]
    if store and name:
        profiles.write_profile(
            settings.db_path,
            name=name,
            params_json=fitted.to_json(),
            params_hash=fitted.params_hash(),
            fitted_on=data.fitted_on,
            train=cal.train,
            test=cal.test,
            size_ratio=cal.size_ratio,
            scores=cal.table,
        )
        lines.append(
            f"stored profile {name!r} in {settings.db_path}: use it with "
            f"`liqheat model --profile {name}` or LIQHEAT_MODEL_PROFILE={name}"
        )
    return table, lines
