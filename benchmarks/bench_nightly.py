"""Benchmark of a whole night: N symbols x a D-day model window, one new day each.

Builds a seeded SYNTHETIC archive (:mod:`flows.demo_data`, the Binance USD-M layout) for N
symbols x D days under ``--work``, served through ``file://``; loads the first D-1 days into a
template warehouse once (the real ingest, not timed), then times the real nightly flow on a
copy: ingest of the last day (plus the gap check), the model over the D-day window for every
symbol, and the site. Prints wall time per stage and per symbol, peak RSS (the run's process
tree: the flow process and its model workers; the Prefect server separately), the warehouse
size and size per symbol-day, and the budgets of issue 15 (printed, never asserted). Also
runs the staging on a 2-process Dask ``LocalCluster`` and prints the difference, and
optionally times ``liqheat demo``.

    .venv/bin/python benchmarks/bench_nightly.py                      # N = 10, 50, 100; D = 30
    .venv/bin/python benchmarks/bench_nightly.py --symbols 4 --days 3 # quick
    PREFECT_API_URL=http://127.0.0.1:4200/api .venv/bin/python benchmarks/bench_nightly.py

With ``PREFECT_API_URL`` set the runs use that server; otherwise one server is started for the
whole benchmark (its start-up printed on its own line) and every run uses it, so the figures
measure liqheat, not Prefect's start-up. The archive and templates are cached in ``--work``
(default ``.bench/nightly``) and reused by later runs with the same seed and days.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAST_DAY = date(2026, 6, 30)
BUDGET_S = 300.0
BUDGET_RSS_MB = 4096.0
DEMO_BUDGET_S = 30.0
GB = 1024**3


def bench_symbols(n: int) -> list[str]:
    """The N benchmark symbols: BTCUSDT, ETHUSDT, then synthetic names."""
    names = ["BTCUSDT", "ETHUSDT"] + [f"X{i:03d}USDT" for i in range(max(0, n - 2))]
    return names[:n]


# ---------------------------------------------------------------- archive and templates


#: distinct simulated markets; further symbols reuse their files under their own names
#: (simulating positions costs ~0.3-1 s per symbol-day, re-zipping a copy ~20 ms per file)
BASE_MARKETS = 10


def _write_symbol(root: str, symbol: str, start: str, days: int, seed: int) -> str:
    from flows.demo_data import write_demo_archive

    write_demo_archive(Path(root), [symbol], date.fromisoformat(start), days, seed)
    return symbol


def _clone_symbol(root: str, base: str, symbol: str, start: str, days: int) -> str:
    """Write ``symbol``'s archive files as copies of ``base``'s (the symbol renamed inside)."""
    import zipfile

    from flows.demo_data import SYNTHETIC_DIR
    from flows.sources.binance.paths import (
        atomic_write,
        daily_path,
        monthly_path,
        write_archive_file,
    )

    first = date.fromisoformat(start)
    paths = []
    for i in range(days):
        day = first + timedelta(days=i)
        paths += [(daily_path(ds, base, day), daily_path(ds, symbol, day)) for ds in
                  ("klines", "markPriceKlines", "metrics")]  # fmt: skip
    months = sorted({(d.year, d.month) for d in (first + timedelta(days=i) for i in range(days))})
    paths += [
        (monthly_path("fundingRate", base, y, m), monthly_path("fundingRate", symbol, y, m))
        for y, m in months
    ]
    for src, dst in paths:
        with zipfile.ZipFile(Path(root) / src) as zf:
            text = zf.read(zf.namelist()[0]).decode()
        write_archive_file(Path(root), dst, text.replace(base, symbol))
    liq = Path(root) / SYNTHETIC_DIR / "liquidations"
    atomic_write(liq / f"{symbol}.csv", (liq / f"{base}.csv").read_bytes())
    return symbol


def build_archive(root: Path, symbols: Sequence[str], days: int, seed: int) -> float:
    """Write the symbols missing from the cached archive (2 processes); return seconds.
    The first :data:`BASE_MARKETS` are simulated, the others copy them round-robin."""
    start = LAST_DAY - timedelta(days=days - 1)
    marks = root / ".done"
    marks.mkdir(parents=True, exist_ok=True)

    def mark(s: str) -> Path:
        return marks / f"{s}-{start}-{days}-{seed}"

    t0 = time.perf_counter()
    bases = list(symbols[:BASE_MARKETS])
    for stage in (bases, list(symbols[BASE_MARKETS:])):
        todo = [s for s in stage if not mark(s).exists()]
        if not todo:
            continue
        print(f"  writing the synthetic archive for {len(todo)} symbol(s) x {days} days ...")
        with ProcessPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(_write_symbol, str(root), s, start.isoformat(), days, seed)
                if s in bases
                else pool.submit(
                    _clone_symbol,
                    str(root),
                    bases[symbols.index(s) % len(bases)],
                    s,
                    start.isoformat(),
                    days,
                )
                for s in todo
            ]
            for fut in futures:
                mark(fut.result()).touch()
    return time.perf_counter() - t0


def build_template(work: Path, archive: Path, symbols: Sequence[str], days: int, seed: int) -> Path:
    """A warehouse holding the first D-1 days of ``symbols`` (cached; extended from the
    largest cached template with a subset of the symbols)."""
    from flows.ingest import run_ingest
    from flows.settings import Settings

    n = len(symbols)
    path = work / f"template-{n}x{days}-seed{seed}" / "liqheat.duckdb"
    if path.exists():
        return path
    first = LAST_DAY - timedelta(days=days - 1)
    history = [first + timedelta(days=i) for i in range(days - 1)]
    smaller = sorted(
        (
            int(m.group(1)),
            p,
        )
        for p in work.glob(f"template-*x{days}-seed{seed}")
        if (m := re.match(r"template-(\d+)x", p.name)) and int(m.group(1)) < n
    )
    home = path.parent.with_name(path.parent.name + ".part")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    have: list[str] = []
    if smaller:
        k, src = smaller[-1]
        shutil.copy(src / "liqheat.duckdb", home / "liqheat.duckdb")
        have = bench_symbols(k)
    todo = [s for s in symbols if s not in have]
    if history and todo:
        print(f"  loading {len(todo)} symbol(s) x {len(history)} days into the template ...")
        t0 = time.perf_counter()
        settings = Settings(home=home)
        report = run_ingest(
            settings, todo, history, base_url=archive.resolve().as_uri(), progress=False
        )
        del report
        from flows.demo_data import SYNTHETIC_DIR
        from flows.realized import import_realized

        for symbol in todo:
            csv = archive / SYNTHETIC_DIR / "liquidations" / f"{symbol}.csv"
            import_realized(settings, symbol, csv, source="synthetic")
        print(f"  template loaded in {time.perf_counter() - t0:.0f}s")
    shutil.rmtree(home / "raw", ignore_errors=True)
    home.rename(path.parent)
    return path


# ---------------------------------------------------------------- one measured run (child)


def run_one(args: argparse.Namespace) -> None:
    """Child process: run the nightly flow once and print its figures as one JSON line."""
    os.environ["LIQHEAT_HOME"] = args.home
    from flows.settings import Settings, configure_prefect_home

    configure_prefect_home(Settings())
    symbols = bench_symbols(args.n)
    address = None
    cluster_s = None
    cluster = None
    if args.task_runner == "dask":
        from distributed import LocalCluster

        t0 = time.perf_counter()
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        address = cluster.scheduler_address
        cluster_s = time.perf_counter() - t0
    from flows.pipeline import nightly_flow
    from warehouse.reads import query

    t0 = time.perf_counter()
    state = nightly_flow(
        date=LAST_DAY.isoformat(),
        symbols=symbols,
        base_url=Path(args.archive).resolve().as_uri(),
        backfill_days=1,
        task_runner=args.task_runner,
        dask_address=address,
        return_state=True,
    )
    wall = time.perf_counter() - t0
    if cluster is not None:
        cluster.close()
    text = state.result(raise_on_failure=False)
    text = text if isinstance(text, str) else str(text)
    timings = re.search(r"ingest ([\d.]+)s, model ([\d.]+)s, report ([\d.]+)s", text)
    db = Path(args.home) / "liqheat.duckdb"
    per = query(db, "SELECT symbol, model_seconds, status FROM runs ORDER BY symbol")
    tables = query(
        db,
        "SELECT table_name, estimated_size AS n FROM duckdb_tables() "
        "WHERE schema_name = 'main' ORDER BY estimated_size DESC LIMIT 6",
    )
    print(
        "RESULT "
        + json.dumps(
            {
                "state": state.type.value,
                "wall": wall,
                "ingest": float(timings.group(1)) if timings else None,
                "model": float(timings.group(2)) if timings else None,
                "report": float(timings.group(3)) if timings else None,
                "model_per_symbol": per["model_seconds"].to_list(),
                "failed": int((per["status"] == "failed").sum()),
                "cluster_start": cluster_s,
                "db_bytes": db.stat().st_size,
                "tables": dict(zip(tables["table_name"], tables["n"], strict=True)),
                "summary_tail": text.splitlines()[-4:],
            }
        ),
        flush=True,
    )


# ---------------------------------------------------------------- measuring from the parent


def _tree_rss_mb(pid: int) -> tuple[float, float]:
    """(sum, max) RSS in MB of ``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        p = int(entry.name)
        children.setdefault(int(fields.get("PPid", "0").strip()), []).append(p)
        rss[p] = float(fields.get("VmRSS", "0 kB").split()[0]) / 1024
    total, biggest, stack = 0.0, 0.0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0.0)
        biggest = max(biggest, rss.get(p, 0.0))
        stack += children.get(p, [])
    return total, biggest


def measure(cmd: list[str], env: dict[str, str], server_pid: int | None) -> dict[str, Any]:
    """Run a child, sample its process tree's RSS every 0.2 s; return its RESULT + peaks."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    peak = {"tree": 0.0, "proc": 0.0, "server": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            tree, biggest = _tree_rss_mb(proc.pid)
            peak["tree"] = max(peak["tree"], tree)
            peak["proc"] = max(peak["proc"], biggest)
            if server_pid:
                peak["server"] = max(peak["server"], _tree_rss_mb(server_pid)[0])
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    found = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not found:
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise SystemExit(f"benchmark run failed (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(found[-1].removeprefix("RESULT "))
    result["peak_tree_mb"] = peak["tree"]
    result["peak_proc_mb"] = peak["proc"]
    result["peak_server_mb"] = peak["server"]
    return result


def nightly_once(
    work: Path,
    archive: Path,
    template: Path,
    n: int,
    task_runner: str,
    env: dict[str, str],
    server_pid: int | None,
) -> dict[str, Any]:
    home = work / f"run-{n}-{task_runner}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copy(template, home / "liqheat.duckdb")
    before = (home / "liqheat.duckdb").stat().st_size
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--run-one",
        "--home",
        str(home),
        "--archive",
        str(archive),
        "--n",
        str(n),
        "--task-runner",
        task_runner,
    ]
    result = measure(cmd, env, server_pid)
    result["db_before"] = before
    return result


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1024**2:,.1f} MB"


def report_run(n: int, days: int, r: dict[str, Any]) -> None:
    per = [x for x in r["model_per_symbol"] if x is not None]
    stages = {k: r[k] or 0.0 for k in ("ingest", "model", "report")}
    other = r["wall"] - sum(stages.values())
    print(f"N={n} symbols x D={days} days (one new day each), staging on {r['runner']}:")
    print(f"  nightly wall      {r['wall']:7.1f} s   (state {r['state']}, {r['failed']} failed)")
    for k, v in stages.items():
        print(f"  {k:<8}          {v:7.1f} s   {v / n:6.3f} s/symbol")
    print(f"  flow overhead     {other:7.1f} s   (planning, Prefect task runs, the summary)")
    if per:
        print(
            f"  model per symbol  mean {sum(per) / len(per):.2f} s, max {max(per):.2f} s "
            "(read + compute + write; computed 2 at a time in worker processes)"
        )
    print(
        f"  peak RSS          {r['peak_tree_mb']:,.0f} MB (flow process + model workers; "
        f"largest process {r['peak_proc_mb']:,.0f} MB); "
        f"Prefect server {r['peak_server_mb']:,.0f} MB"
    )
    size = r["db_bytes"]
    print(
        f"  warehouse         {_mb(size)} ({_mb(size / (n * days))} per symbol-day; "
        f"{_mb(r['db_before'])} before the night)"
    )
    if r.get("tables"):
        rows = ", ".join(f"{t} {n:,}" for t, n in r["tables"].items())
        print(f"  largest tables    {rows} rows")
    if r.get("cluster_start") is not None:
        print(f"  dask LocalCluster start (2 processes) {r['cluster_start']:.1f} s (not in wall)")


def time_demo(work: Path, env: dict[str, str], *, with_server: bool) -> dict[str, Any]:
    home = work / ("demo-running-server" if with_server else "demo-own-server")
    shutil.rmtree(home, ignore_errors=True)
    run_env = {**env, "LIQHEAT_HOME": str(home)}
    if not with_server:
        run_env.pop("PREFECT_API_URL", None)
        run_env.pop("PREFECT_HOME", None)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("liqheat")), "demo"],
        env=run_env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    wall = time.perf_counter() - t0
    server = re.search(r"prefect server start: ([\d.]+)s", proc.stdout)
    timings = re.search(r"ingest ([\d.]+)s, model ([\d.]+)s, report ([\d.]+)s", proc.stdout)
    return {
        "wall": wall,
        "rc": proc.returncode,
        "server": float(server.group(1)) if server else None,
        "timings": timings.group(0) if timings else "",
        "err": proc.stderr.strip().splitlines()[-3:],
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", default="10,50,100", help="comma-separated N (default 10,50,100)")
    ap.add_argument("--days", type=int, default=30, help="model window D in days (default 30)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=ROOT / ".bench" / "nightly")
    ap.add_argument(
        "--dask-symbols",
        type=int,
        default=None,
        help="N of the Dask LocalCluster comparison (default the smallest N; 0 = skip)",
    )
    ap.add_argument("--demo", action="store_true", help="also time `liqheat demo` (2 x 3 days)")
    # child mode
    ap.add_argument("--run-one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    ap.add_argument("--archive", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--task-runner", default="thread", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_one:
        run_one(args)
        return

    ns = sorted({int(x) for x in args.symbols.split(",") if x.strip()})
    if not ns or min(ns) < 1 or args.days < 2:
        ap.error("need N >= 1 and --days >= 2 (one day is the night's new day)")
    dask_n = min(ns) if args.dask_symbols is None else args.dask_symbols
    work = args.work.resolve()
    archive = work / f"archive-seed{args.seed}"
    load = os.getloadavg()
    print(
        f"bench_nightly: N = {', '.join(map(str, ns))}, D = {args.days}, seed {args.seed}, "
        f"{os.cpu_count()} cores; load average {load[0]:.1f} at start "
        "(other processes share these cores: figures are upper bounds)"
    )
    t_arch = build_archive(archive, bench_symbols(max(ns)), args.days, args.seed)
    print(f"  archive ready ({t_arch:.0f}s), {archive.as_uri()}")
    # ascending, so that each template extends the previous one (loads only the new symbols)
    templates = {
        n: build_template(work, archive, bench_symbols(n), args.days, args.seed)
        for n in sorted(set(ns) | ({dask_n} if dask_n else set()))
    }

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server_pid: int | None = None
    from contextlib import ExitStack

    with ExitStack() as stack:
        if os.environ.get("PREFECT_API_URL"):
            print(f"Prefect server: using PREFECT_API_URL={os.environ['PREFECT_API_URL']}")
        else:
            from flows.server import PID_FILE, local_prefect_server

            t0 = time.perf_counter()
            prefect_home = work / "prefect"
            api = stack.enter_context(local_prefect_server(prefect_home, ui=False))
            print(
                f"Prefect server: started in {time.perf_counter() - t0:.1f} s at {api} "
                "(paid once, not in the figures below)"
            )
            server_pid = int(json.loads((prefect_home / PID_FILE).read_text())["pid"])
            env["PREFECT_API_URL"] = api
            env["PREFECT_HOME"] = str(prefect_home)

        results: dict[int, dict[str, Any]] = {}
        for n in ns:
            r = nightly_once(work, archive, templates[n], n, "thread", env, server_pid)
            r["runner"] = "threads"
            results[n] = r
            report_run(n, args.days, r)
            shutil.rmtree(work / f"run-{n}-thread", ignore_errors=True)
        if dask_n:
            r = nightly_once(work, archive, templates[dask_n], dask_n, "dask", env, server_pid)
            r["runner"] = "a 2-process Dask LocalCluster"
            report_run(dask_n, args.days, r)
            shutil.rmtree(work / f"run-{dask_n}-dask", ignore_errors=True)
            if dask_n in results:
                base = results[dask_n]
                print(
                    f"  dask vs threads (N={dask_n}): ingest "
                    f"{r['ingest'] - base['ingest']:+.1f} s, wall {r['wall'] - base['wall']:+.1f} s"
                )
        demo: list[tuple[str, dict[str, Any]]] = []
        if args.demo:
            demo.append(("with the running server", time_demo(work, env, with_server=True)))
        stack.close()
        if args.demo:
            demo.append(("starting its own server", time_demo(work, env, with_server=False)))

    print("\nbudgets (issue 15; printed, not asserted):")
    big = results[max(ns)]
    n = max(ns)
    verdict = "met" if big["wall"] < BUDGET_S else "MISSED"
    print(f"  {n} symbols nightly under {BUDGET_S:.0f} s: {big['wall']:.1f} s -> {verdict}")
    verdict = "met" if big["peak_tree_mb"] < BUDGET_RSS_MB else "MISSED"
    print(f"  peak RSS under 4 GB: {big['peak_tree_mb']:,.0f} MB -> {verdict}")
    if len(ns) > 1:
        costs = [(k, results[k]["wall"] / k) for k in ns]
        flat = all(b <= a * 1.1 for (_, a), (_, b) in itertools.pairwise(costs))
        line = ", ".join(f"N={k}: {c:.2f} s" for k, c in costs)
        print(f"  cost per symbol flat or falling: {line} -> {'met' if flat else 'MISSED'}")
        for stage in ("ingest", "model", "report"):
            per = ", ".join(f"{(results[k][stage] or 0) / k:.3f}" for k in ns)
            print(f"    {stage:<7} s/symbol at N = {', '.join(map(str, ns))}: {per}")
    for label, d in demo:
        verdict = "met" if d["wall"] < DEMO_BUDGET_S and d["rc"] == 0 else "MISSED"
        server = f", server start {d['server']:.1f} s" if d["server"] is not None else ""
        print(
            f"  liqheat demo ({label}) under {DEMO_BUDGET_S:.0f} s: {d['wall']:.1f} s "
            f"(exit {d['rc']}; {d['timings']}{server}) -> {verdict}"
        )
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
