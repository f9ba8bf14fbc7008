"""Alerts: liquidation clusters close to the price, and the text sent for them.

A cluster (a row of `transforms.clusters.liquidation_clusters`) becomes an alert when it is
within ``max_distance_pct`` of the price (``|distance_pct| <= max_distance_pct``) and large
enough: ``usd >= min_usd`` and ``share >= min_share`` (its share of its side's total USD).
"""

from __future__ import annotations

import math

import polars as pl

__all__ = [
    "ALERT_SCHEMA",
    "WEBHOOK_TEXT_LIMIT",
    "alert_changes",
    "alert_rows",
    "format_price",
    "format_usd",
    "webhook_text",
]

_UTC = pl.Datetime("us", "UTC")

#: One alert (the ``alerts`` table without run_id, created_at and params_hash).
ALERT_SCHEMA: dict[str, pl.DataType] = {
    "ts": _UTC,
    "exchange": pl.String(),
    "symbol": pl.String(),
    "side": pl.String(),
    "price": pl.Float64(),
    "price_low": pl.Float64(),
    "price_high": pl.Float64(),
    "usd": pl.Float64(),
    "distance_pct": pl.Float64(),
    "ref_price": pl.Float64(),
    "message": pl.String(),
}

#: longest webhook text (Discord refuses ``content`` over 2,000 characters)
WEBHOOK_TEXT_LIMIT = 1900


def format_usd(usd: float) -> str:
    """USD the way traders write it: ``$1.23B``, ``$456.7M``, ``$12.3K``, ``$950``.

    Examples
    --------
    >>> format_usd(1_234_000_000), format_usd(456_700_000), format_usd(12_345), format_usd(950)
    ('$1.23B', '$456.7M', '$12.3K', '$950')
    """
    for size, unit, digits in ((1e9, "B", 2), (1e6, "M", 1), (1e3, "K", 1)):
        if abs(usd) >= size:
            return f"${usd / size:,.{digits}f}{unit}"
    return f"${usd:,.0f}"


def format_price(price: float, step: float) -> str:
    """A price with as many decimals as the price step has (thousands separated).

    Examples
    --------
    >>> format_price(64350.0, 50.0), format_price(3.1415, 0.005), format_price(0.5, 0.1)
    ('64,350', '3.142', '0.5')
    """
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 2
    return f"{price:,.{decimals}f}"


def _message(row: dict[str, object], step: float) -> str:
    side = "longs" if row["side"] == "long" else "shorts"
    price, low, high = (float(row[c]) for c in ("price", "price_low", "price_high"))  # type: ignore[arg-type]
    where = "" if row["exchange"] in (None, "all") else f" {row['exchange']}"
    return (
        f"{row['symbol']}{where}: {format_usd(float(row['usd']))} of {side} "  # type: ignore[arg-type]
        f"at {format_price(price, step)} ({format_price(low, step)}-{format_price(high, step)}), "
        f"{float(row['distance_pct']):+.1f}% from {format_price(float(row['ref_price']), step)}"  # type: ignore[arg-type]
    )


def alert_rows(
    clusters: pl.DataFrame,
    *,
    exchange: str,
    symbol: str,
    price_step: float,
    max_distance_pct: float,
    min_usd: float = 0.0,
    min_share: float = 0.0,
) -> pl.DataFrame:
    """The clusters that become alerts, each with its one-line message.

    Parameters
    ----------
    clusters
        `transforms.clusters.CLUSTERS_SCHEMA` frame of one liquidation map.
    exchange, symbol
        Where the clusters come from (``exchange="all"`` is left out of the message).
    price_step
        The map's price step (prices in the message get its decimals).
    max_distance_pct
        Largest ``|distance_pct|`` that alerts.
    min_usd, min_share
        Smallest cluster USD, and smallest share of its side's total, that alert.

    Returns
    -------
    pl.DataFrame
        `ALERT_SCHEMA`, nearest first.

    Examples
    --------
    >>> from datetime import datetime
    >>> from transforms.clusters import liquidation_clusters
    >>> m = pl.DataFrame({"as_of": datetime(2024, 1, 1), "ref_price": 64_000.0,
    ...     "price": [62_000.0, 63_000.0, 65_000.0], "long_usd": [9e8, 2e8, 0.0],
    ...     "short_usd": [0.0, 0.0, 4e8]})
    >>> cl = liquidation_clusters(m, price_step=50.0)
    >>> out = alert_rows(cl, exchange="all", symbol="BTCUSDT", price_step=50.0,
    ...                  max_distance_pct=2.0, min_usd=1e8)
    >>> for text in out["message"]:
    ...     print(text)
    BTCUSDT: $200.0M of longs at 63,000 (63,000-63,050), -1.6% from 64,000
    BTCUSDT: $400.0M of shorts at 65,000 (65,000-65,050), +1.6% from 64,000
    """
    if not (math.isfinite(max_distance_pct) and max_distance_pct >= 0):
        raise ValueError(f"max_distance_pct must be >= 0, got {max_distance_pct!r}")
    picked = clusters.filter(
        (pl.col("distance_pct").abs() <= max_distance_pct)
        & (pl.col("usd") >= min_usd)
        & (pl.col("share") >= min_share)
        & (pl.col("usd") > 0)
    ).sort(pl.col("distance_pct").abs(), "side")
    if picked.height == 0:
        return pl.DataFrame(schema=ALERT_SCHEMA)
    frame = picked.select(
        pl.col("as_of").alias("ts"),
        pl.lit(exchange).alias("exchange"),
        pl.lit(symbol).alias("symbol"),
        "side",
        "price",
        "price_low",
        "price_high",
        "usd",
        "distance_pct",
        "ref_price",
    )
    messages = [_message(row, price_step) for row in frame.iter_rows(named=True)]
    return frame.with_columns(pl.Series("message", messages, dtype=pl.String)).select(
        [pl.col(c).cast(t) for c, t in ALERT_SCHEMA.items()]
    )


def webhook_text(messages: list[str], *, header: str, limit: int = WEBHOOK_TEXT_LIMIT) -> str:
    """The text of one webhook post: a header line, then one line per alert, cut to ``limit``
    characters with a closing "... and N more" line when they do not fit.

    Examples
    --------
    >>> print(webhook_text(["a" * 10, "b" * 10, "c" * 10], header="3 alerts", limit=40))
    3 alerts
    - aaaaaaaaaa
    ... and 2 more
    """
    lines = [header]
    for i, text in enumerate(messages):
        more = f"... and {len(messages) - i} more"
        candidate = "\n".join([*lines, f"- {text}"])
        rest = len(messages) - i - 1
        tail = len(f"\n... and {rest} more") if rest else 0
        if len(candidate) + tail > limit:
            return "\n".join([*lines, more])
        lines.append(f"- {text}")
    return "\n".join(lines)


def alert_changes(
    current: pl.DataFrame, active: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, list[int]]:
    """Compare the alerts true now with the stored ones still true (not cleared).

    An alert is the same cluster when exchange, symbol and side agree and the price ranges
    (``price_low``..``price_high``) overlap; each stored alert matches at most one current
    row (the nearest price). Returns ``(new, kept, cleared)``: the current rows matching no
    stored alert (to insert and send), the current rows matching one with its ``key``
    column (to refresh, not send again), and the keys of stored alerts no longer true.

    Parameters
    ----------
    current
        Rows of :func:`alert_rows` (plus any extra columns, kept).
    active
        Stored alerts: ``key`` (int), exchange, symbol, side, price, price_low, price_high.

    Examples
    --------
    >>> cur = pl.DataFrame({"exchange": ["all", "all"], "symbol": "BTCUSDT",
    ...     "side": ["long", "short"], "price": [100.0, 120.0], "price_low": [99.0, 119.0],
    ...     "price_high": [101.0, 121.0]})
    >>> old = pl.DataFrame({"key": [7, 8], "exchange": "all", "symbol": "BTCUSDT",
    ...     "side": ["long", "long"], "price": [100.5, 90.0], "price_low": [100.5, 89.0],
    ...     "price_high": [102.0, 91.0]})
    >>> new, kept, cleared = alert_changes(cur, old)
    >>> new["side"].to_list(), kept["key"].to_list(), cleared
    (['short'], [7], [8])
    """
    on = ["exchange", "symbol", "side"]
    cur = current.with_row_index("_i")
    if active.height == 0 or cur.height == 0:
        gone = [int(k) for k in active["key"].to_list()] if active.height else []
        empty = cur.head(0).with_columns(pl.lit(0, pl.Int64).alias("key")).drop("_i")
        return cur.drop("_i"), empty, gone
    old = active.select(
        pl.col("key").cast(pl.Int64),
        *on,
        pl.col("price").alias("_p"),
        pl.col("price_low").alias("_lo"),
        pl.col("price_high").alias("_hi"),
    )
    pairs = (
        cur.select("_i", *on, "price", "price_low", "price_high")
        .join(old, on=on)
        .filter(
            ((pl.col("price_low") <= pl.col("_hi")) & (pl.col("price_high") >= pl.col("_lo")))
            | (pl.col("price") == pl.col("_p"))
        )
        .with_columns((pl.col("price") - pl.col("_p")).abs().alias("_d"))
        .sort("_d", "_i", "key")
    )
    taken_i: set[int] = set()
    taken_k: set[int] = set()
    match: dict[int, int] = {}
    for i, key in pairs.select("_i", "key").iter_rows():
        if i not in taken_i and key not in taken_k:
            taken_i.add(i)
            taken_k.add(key)
            match[i] = key
    matched = pl.DataFrame(
        {"_i": list(match), "key": list(match.values())},
        schema={"_i": pl.UInt32, "key": pl.Int64},
    )
    new = cur.filter(~pl.col("_i").is_in(list(match))).drop("_i")
    kept = cur.join(matched, on="_i").sort("_i").drop("_i")
    cleared = sorted(int(k) for k in active["key"].to_list() if int(k) not in taken_k)
    return new, kept, cleared
