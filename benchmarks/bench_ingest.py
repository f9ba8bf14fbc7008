"""Benchmark archive ingestion. Prints only; asserts nothing.

1. One symbol-day of klines/1m + markPriceKlines/1m + metrics (realistic generated files in a
   temporary file:// mirror): parse-only rows/s, and full ingest (verify checksum, unzip, parse,
   replace-day write + ingest_log) per day.
2. A generated 1.4 M-row aggTrades day: streaming parse into the per-minute price profile,
   rows/s and peak resident memory of a fresh process doing only that parse.

Run: ``.venv/bin/python benchmarks/bench_ingest.py [--trades 1400000] [--days 3]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flows.ingest import ingest  # noqa: E402
from flows.sources.binance.client import read_csv_member  # noqa: E402
from flows.sources.binance.parsing import parse_aggtrades_profile, parse_klines, parse_metrics  # noqa: E402
from flows.sources.binance.paths import write_archive_file  # noqa: E402
from tests.httpmirror import aggtrades_frame, write_day  # noqa: E402

SYMBOL = "BTCUSDT"
START = date(2024, 1, 1)


def _peak_rss_mb(usage: resource.struct_rusage) -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024 / 1024
    return usage.ru_maxrss * scale


def bench_core_day(tmp: Path, days: int) -> None:
    root = tmp / "mirror"
    dates = [START + timedelta(days=i) for i in range(days)]
    paths = [write_day(root, SYMBOL, d, seed=i) for i, d in enumerate(dates)]

    # parse only (from the zips)
    t0 = time.perf_counter()
    rows = 0
    for d, p in zip(dates, paths, strict=True):
        rows += parse_klines(read_csv_member(root / p["klines"]), SYMBOL, d).rows
        rows += parse_klines(
            read_csv_member(root / p["markPriceKlines"]), SYMBOL, d, mark=True
        ).rows
        rows += parse_metrics(read_csv_member(root / p["metrics"]), SYMBOL, d).rows
    parse_s = time.perf_counter() - t0
    print(
        f"core day parse : {rows / days:,.0f} rows/day, {parse_s / days * 1000:6.1f} ms/day, "
        f"{rows / parse_s:,.0f} rows/s"
    )

    # full ingest (checksum, cache copy, unzip, parse, write); first call pays the migration
    db = tmp / "bench.duckdb"
    ingest(
        db,
        tmp / "raw",
        root.resolve().as_uri(),
        [SYMBOL],
        [START - timedelta(days=1)],
        progress=False,
        workers=1,
    )
    for workers in (1, 3):
        t0 = time.perf_counter()
        report = ingest(
            db,
            tmp / "raw",
            root.resolve().as_uri(),
            [SYMBOL],
            dates,
            force=True,
            progress=False,
            workers=workers,
            today=START,
        )
        total_s = time.perf_counter() - t0
        loaded = [o for o in report.outcomes if o.status == "loaded"]
        print(
            f"core day ingest: {total_s / days * 1000:6.1f} ms/day (workers={workers}), "
            f"{sum(o.rows for o in loaded) / total_s:,.0f} rows/s, {len(loaded)} files loaded"
        )


def _parse_trades(csv_path: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    t0 = time.perf_counter()
    parsed = parse_aggtrades_profile(Path(csv_path), SYMBOL, START)
    out.put((time.perf_counter() - t0, parsed.rows, parsed.warning))


def bench_aggtrades(tmp: Path, n: int) -> None:
    frame = aggtrades_frame(START, n, seed=1)
    csv_path = tmp / "aggTrades.csv"
    frame.write_csv(csv_path)
    size_mb = csv_path.stat().st_size / 1e6
    del frame
    zip_path = write_archive_file(tmp / "z", "BTCUSDT-aggTrades.zip", csv_path.read_text())
    zip_mb = zip_path.stat().st_size / 1e6
    print(f"aggTrades      : {n:,} rows, {size_mb:.0f} MB CSV, {zip_mb:.0f} MB zip")
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    proc = ctx.Process(target=_parse_trades, args=(str(csv_path), queue))
    proc.start()
    seconds, out_rows, warning = queue.get()
    proc.join()
    peak = _peak_rss_mb(resource.getrusage(resource.RUSAGE_CHILDREN))
    print(
        f"aggTrades parse: {seconds:.2f} s, {n / seconds:,.0f} rows/s -> {out_rows:,} profile "
        f"rows; peak RSS of the parsing process {peak:.0f} MB (warning: {warning})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--trades", type=int, default=1_400_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="liqheat-bench-") as tmp:
        bench_core_day(Path(tmp), args.days)
        bench_aggtrades(Path(tmp), args.trades)


if __name__ == "__main__":
    main()
