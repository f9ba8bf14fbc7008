"""The site build: which pages to (re)build, fingerprints of their inputs (unchanged pages
are kept), the worker pool for many symbols, and the all-or-nothing commit of every page
with the index last."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from reports import contexts
from reports.assets import bundle_header, write_static
from reports.files import Staged, safe_component
from reports.ranges import Range, default_range, parse_range
from reports.render import environment
from reports.views import Built, exchange_label, load_symbol, views_of
from warehouse import reads, reads_outputs
from warehouse import reads_report as rr


@dataclass(frozen=True)
class SiteResult:
    """What :func:`build_site` did: pages written, pages left unchanged (same inputs), the
    index, notes for the reader (e.g. data shorter than a range asked for) and per-symbol
    failures ``(symbol, error)``."""

    pages: list[Path]
    kept: list[Path]
    index: Path
    notes: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _tabs(built: list[Built], current: Built, here: str, rng: Range) -> list[dict[str, Any]]:
    """The exchange switch of a page in folder ``here`` (relative to the symbol folder): one
    tab per view, linking to the same range when that view has it, else its default page."""
    if len(built) < 2:
        return []
    up = "../" * here.count("/")
    tabs = []
    for b in built:
        exists = {lk["key"] for lk in b.links if lk["exists"]}
        page = rng.page if rng.key in exists else "index.html"
        tabs.append(
            {
                "key": b.view.key,
                "label": b.view.label,
                "href": f"{up}{b.view.rel}{page}",
                "active": b is current,
                "has_run": b.sym.run is not None,
            }
        )
    return tabs


#: the warehouse modules the pages read through (their queries are part of the report code)
PAGE_READS = (rr, reads_outputs, reads)


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the report code, templates, static files and the warehouse modules of
    :data:`PAGE_READS`: pages built by other code are rebuilt even when their data did not
    change."""
    digest = hashlib.sha256()
    root = resources.files("reports")
    for sub in ("", "templates", "static"):
        folder = root / sub if sub else root
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_file() and entry.name.endswith((".py", ".html", ".css", ".js")):
                digest.update(entry.name.encode())
                digest.update(entry.read_bytes())
    for module in PAGE_READS:  # every warehouse module the pages read through: SQL is code too
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(bundle_header().encode())
    return digest.hexdigest()[:16]


_FINGERPRINT_RE = re.compile(rb'<meta name="liqheat-inputs" content="([0-9a-f]+)">')


def _fingerprint(*parts: Any) -> str:
    text = json.dumps([code_version(), *parts], default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _unchanged(target: Path, fingerprint: str) -> bool:
    """True when ``target`` exists and was built from the same inputs."""
    try:
        with target.open("rb") as fh:
            head = fh.read(2048)
    except OSError:
        return False
    m = _FINGERPRINT_RE.search(head)
    return m is not None and m.group(1).decode() == fingerprint


def build_site(
    db_path: Path,
    site_dir: Path,
    *,
    symbols: Sequence[str] | None = None,
    days: Sequence[Range | str | int] | None = None,
    exchanges: Sequence[str] | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SiteResult:
    """Render the report site from the warehouse at ``db_path`` into ``site_dir``; return the
    pages written, the pages left as they were, notes and per-symbol failures.

    Every symbol gets one view per exchange with data (``exchanges`` limits them) plus the
    aggregate ("all") when `flows.exchange_sum.aggregate_symbol` stored one. The default view (the
    aggregate, else the first exchange: binance, bybit, okx) lives at ``<SYMBOL>/<range>.html``;
    with more than one view each exchange also gets ``<SYMBOL>/<exchange>/<range>.html`` and
    every page shows an exchange switch. Ranges are :data:`reports.ranges.RANGES` (12h .. 1y);
    ``days`` limits the pages built to those ranges (keys like ``"3d"`` or day counts), but
    every page links every range the data covers, and ``<SYMBOL>/index.html`` is always the
    default range (7d, else the longest the data has), built when missing. A range longer
    than the data builds the range that shows all of it, with a note. ``symbols`` limits the
    symbol pages rebuilt (default: every symbol with data); the index always lists every
    symbol. Pages whose inputs did not change are left alone (``force`` rebuilds them). A
    symbol whose pages fail to build is reported in ``failures`` and never stops the others.
    Reads only, over one warehouse connection per process: from :data:`MIN_PARALLEL_SYMBOLS`
    symbols on, the symbols' pages are built in worker processes (``workers``, default the
    usable cores; see :func:`site_workers`) and every page is still renamed into place at the
    end, together. ``progress(done, total)`` is called after each symbol (``total``: the
    symbols on the index, ``done`` from 1 to ``total``).
    """
    db_path = Path(db_path)
    site_dir = Path(site_dir)
    with rr.one_connection(db_path):
        return _build(db_path, site_dir, symbols, days, exchanges, force, workers, progress)


def _requested(days: Sequence[Range | str | int] | None) -> list[Range] | None:
    if days is None:
        return None
    out = [d if isinstance(d, Range) else parse_range(str(d)) for d in days]
    return sorted(set(out))


def _build(
    db_path: Path,
    site_dir: Path,
    symbols: Sequence[str] | None,
    days: Sequence[Range | str | int] | None,
    exchanges: Sequence[str] | None,
    force: bool,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SiteResult:
    env = environment()
    requested = _requested(days)
    all_symbols = rr.report_symbols(db_path, None)
    if exchanges is not None:
        all_symbols = [s for s in all_symbols if views_of(db_path, s, exchanges)]
    if symbols is None:
        chosen = all_symbols
    else:
        missing = [s for s in symbols if s not in all_symbols]
        if missing:
            raise ValueError(f"no data for symbol(s) {', '.join(missing)} in {db_path}")
        chosen = list(dict.fromkeys(symbols))
    runs = {
        ex: {r["symbol"]: r for r in rr.current_runs(db_path, ex).to_dicts()}
        for ex in rr.report_exchanges(db_path)
    }
    generated = datetime.now(UTC)
    write_static(site_dir)
    alerts = [
        {**a, "price_step": runs.get(a["exchange"], {}).get(a["symbol"], {}).get("price_step")}
        for a in contexts.alerts_of(db_path)
    ]
    nav = [{"symbol": s, "slug": safe_component(s)} for s in all_symbols]

    staged = Staged()
    pages: list[Path] = []
    kept: list[Path] = []
    notes: list[str] = []
    failures: list[tuple[str, str]] = []
    index_rows: list[dict[str, Any]] = []
    newest: datetime | None = None
    jobs = [
        _SymbolJob(
            db_path=db_path,
            site_dir=site_dir,
            symbol=symbol,
            runs=runs,
            requested=requested,
            exchanges=exchanges,
            build=symbol in chosen,
            nav=nav,
            generated=generated,
            force=force,
            alerts=[a for a in alerts if a["symbol"] == symbol],
        )
        for symbol in all_symbols
    ]
    try:
        for count, done in enumerate(_symbol_results(jobs, env, workers), start=1):
            staged.moves += done.moves
            pages += done.pages
            kept += done.kept
            notes += done.notes
            if done.error is not None:  # one symbol's failure never stops the others
                failures.append((done.symbol, done.error))
            elif done.row is not None:
                index_rows.append(done.row)
                last_ts = done.row["last_ts"]
                if last_ts is not None:
                    newest = max(newest, last_ts) if newest else last_ts
            if progress is not None:
                progress(count, len(all_symbols))
        contexts.mark_stale(index_rows)
        # symbols with a model first, then the most recent data, then by name
        index_rows.sort(key=lambda r: (r["run"] is None, -_ordinal(r["last_day"]), r["symbol"]))
        index_ctx = {
            "root": "",
            "title": "liqheat · liquidation heatmaps",
            "exchange": ", ".join(exchange_label(ex) for ex in _index_exchanges(index_rows)),
            "updated": newest,
            "generated": generated,
            "symbols": index_rows,
            "nav": nav,
            "current_slug": None,
            "failures": [{"symbol": s, "error": e} for s, e in failures],
            "alerts": alerts,
            "any_synthetic": any(r["synthetic"] for r in index_rows),
        }
        index = site_dir / "index.html"
        html = env.get_template("index.html").render(index_ctx)
        staged.write(index, html)  # last: renamed after every page it links to
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    pages.append(index)
    return SiteResult(pages=pages, kept=kept, index=index, notes=notes, failures=failures)


@dataclass(frozen=True)
class _SymbolJob:
    """What one symbol's pages are built from (picklable: it may go to a worker process)."""

    db_path: Path
    site_dir: Path
    symbol: str
    runs: dict[str, dict[str, Any]]
    requested: list[Range] | None
    exchanges: Sequence[str] | None
    build: bool
    nav: list[dict[str, Any]]
    generated: datetime
    force: bool
    alerts: list[dict[str, Any]]


@dataclass
class _SymbolDone:
    """One symbol's staged pages (temporary files, renamed by the parent's commit), the pages
    left as they were, notes, its index card, or the error that stopped it."""

    symbol: str
    moves: list[tuple[Path, Path]] = field(default_factory=list)
    pages: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    row: dict[str, Any] | None = None
    error: str | None = None


def _run_symbol_job(job: _SymbolJob, env: jinja2.Environment | None = None) -> _SymbolDone:
    """Build one symbol's pages to staged temporary files; never raises (the error is in the
    result, and the symbol's staged files are removed)."""
    env = env or environment()
    staged = Staged()
    done = _SymbolDone(job.symbol)
    sym_dir = job.site_dir / safe_component(job.symbol)
    try:
        with rr.one_connection(job.db_path):
            built = _build_symbol(
                job.db_path,
                env,
                job.symbol,
                sym_dir,
                job.runs,
                job.requested,
                job.exchanges,
                build=job.build,
                nav=job.nav,
                generated=job.generated,
                force=job.force,
                staged=staged,
                pages=done.pages,
                kept=done.kept,
                notes=done.notes,
                alerts=job.alerts,
            )
            if built:
                done.row = contexts.index_row(job.db_path, built, sym_dir)
    except Exception as exc:
        staged.discard()
        return _SymbolDone(job.symbol, notes=done.notes, error=f"{type(exc).__name__}: {exc}")
    done.moves = list(staged.moves)
    return done


#: symbols to build before the pages are spread over worker processes (fewer do not pay for
#: starting them: ~2 s of imports each)
MIN_PARALLEL_SYMBOLS = 8


def site_workers(symbols: int, workers: int | None = None) -> int:
    """Worker processes for building ``symbols`` symbols' pages: the usable cores (or
    ``workers``), 0 (build here) below :data:`MIN_PARALLEL_SYMBOLS` or on one core.

    Examples
    --------
    >>> site_workers(4, 2), site_workers(100, 2), site_workers(100, 1)
    (0, 2, 0)
    """
    cores = workers if workers is not None else len(os.sched_getaffinity(0))
    if symbols < MIN_PARALLEL_SYMBOLS or cores <= 1:
        return 0
    return min(cores, symbols)


def _symbol_results(
    jobs: list[_SymbolJob], env: jinja2.Environment, workers: int | None
) -> Iterator[_SymbolDone]:
    """Each job's result, in job order: built here, or in worker processes (pages render in
    Python under the GIL; every worker reads the warehouse over its own connection)."""
    n = site_workers(sum(j.build for j in jobs), workers)
    if n == 0:
        for job in jobs:
            yield _run_symbol_job(job, env)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # the flow process runs threads: never fork
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        yield from pool.map(_run_symbol_job, jobs, chunksize=1)


def _build_symbol(
    db_path: Path,
    env: jinja2.Environment,
    symbol: str,
    sym_dir: Path,
    runs: dict[str, dict[str, Any]],
    requested: list[Range] | None,
    exchanges: Sequence[str] | None,
    *,
    build: bool,
    nav: list[dict[str, Any]],
    generated: datetime,
    force: bool,
    staged: Staged,
    pages: list[Path],
    kept: list[Path],
    notes: list[str],
    alerts: list[dict[str, Any]],
) -> list[Built]:
    built: list[Built] = []
    for view in views_of(db_path, symbol, exchanges):
        run = runs.get(view.key, {}).get(symbol)
        sym = load_symbol(db_path, view, symbol, run)
        default = default_range(sym.ranges)
        view_dir = sym_dir / view.rel
        wanted: list[Range] = []
        if build and sym.ranges:
            if requested is None:
                wanted = list(sym.ranges)
            else:
                wanted = [r for r in requested if r in sym.ranges]
                longer = [r for r in requested if r > sym.ranges[-1]]
                if longer:
                    have = contexts.duration_text(sym.span[1] - sym.span[0] + timedelta(minutes=1))  # type: ignore[index]
                    notes.append(
                        f"{symbol} ({view.label}): data covers {have}, shorter than "
                        f"{', '.join(r.key for r in longer)}; built {sym.ranges[-1].key}, "
                        "which shows all of it"
                    )
                    wanted.append(sym.ranges[-1])
                if default is not None and not (view_dir / "index.html").exists():
                    wanted.append(default)
                wanted = sorted(set(wanted))
        links = [
            {
                "key": r.key,
                "label": r.label,
                "href": r.page,
                "exists": r in wanted or (view_dir / r.page).exists(),
            }
            for r in sym.ranges
        ]
        built.append(Built(view, sym, wanted, links, default))
    # the default view also fills the symbol folder when it lives in its own folder
    folders = [(b, b.view.rel) for b in built]
    if built and built[0].view.rel:
        folders.insert(0, (built[0], ""))
    tabs_key = [(b.view.key, [lk["key"] for lk in b.links if lk["exists"]]) for b in built]
    for b, rel in folders:
        view_dir = sym_dir / rel
        root = "../" * (1 + rel.count("/"))
        sym = b.sym
        run = sym.run or {}
        loaded = (
            [rr.last_loaded(db_path, ex, symbol) for ex in b.view.exchanges] if b.wanted else []
        )
        for rng in b.wanted:
            targets = [view_dir / rng.page] + (
                [view_dir / "index.html"] if rng == b.default else []
            )
            fp = _fingerprint(
                symbol,
                b.view.key,
                rel,
                rng.key,
                sym.span,
                run.get("params_hash"),
                run.get("computed_at"),
                loaded,
                [lk for lk in b.links],
                tabs_key,
                nav,
                alerts,
            )
            if not force and all(_unchanged(t, fp) for t in targets):
                kept.extend(targets)
                continue
            if b.common is None:
                b.common = contexts.symbol_common(sym)
            if rng not in b.pages:
                b.pages[rng] = contexts.range_page(
                    db_path, b.view, sym, rng, b.common["key_levels"]
                )
            ctx = b.pages[rng]
            page = {
                **b.common,
                **ctx,
                "ladder": b.common["ladder"]
                if b.common["ladder"]["ref"] is not None
                else contexts.ladder(b.common["key_levels"], ctx["stats"]["last"]),
                "root": root,
                "symbol_href": f"{'../' * rel.count('/')}index.html",
                "generated": generated,
                "ranges": [{**lk, "active": lk["key"] == rng.key} for lk in b.links],
                "tabs": _tabs(built, b, rel, rng),
                "nav": nav,
                "current_slug": sym.slug,
                "fingerprint": fp,
                "alerts": alerts,
                "title": contexts.page_title(symbol, b.view, rng, len(built) > 1),
            }
            html = env.get_template("symbol.html").render(page)
            for t in targets:
                pages.append(staged.write(t, html))
    return built


def _index_exchanges(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for ex in r["exchanges"]:
            seen.setdefault(ex["key"], None)
    return list(seen) or ["binance"]


def _ordinal(day: date | None) -> int:
    return day.toordinal() if day is not None else 0
