"""A local Binance-archive mirror for tests: a real HTTP server on 127.0.0.1 with fault injection,
plus generators of realistic archive CSVs/zips.

Usage::

    root = tmp_path / "mirror"
    write_day(root, "BTCUSDT", date(2024, 1, 1))
    faults = {daily_path("klines", "BTCUSDT", date(2024, 1, 1)): [Fault(status=503)]}
    with serve_mirror(root, faults) as mirror:
        ingest(db, raw, mirror.base_url, ["BTCUSDT"], [date(2024, 1, 1)], backoff_s=0.001)
        assert mirror.hits[path] == 2          # GETs per archive path (no leading slash)

Faults are keyed by archive path (e.g. ``data/futures/um/...zip`` or ``...zip.CHECKSUM``) and
consumed in order, each for ``times`` requests; after that the file is served normally.
"""

from __future__ import annotations

import hashlib
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import polars as pl

from flows.demo_data import java_decimal
from flows.sources.binance.paths import daily_path, monthly_path, write_archive_file

NOT_FOUND_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    b"<Message>The specified key does not exist.</Message></Error>"
)


@dataclass
class Fault:
    """One injected misbehaviour for a path.

    status: answer with this HTTP status (404 gets the S3 XML body); body: serve these bytes
    with 200 instead of the file; truncate: announce the full length but send only the first
    N bytes, then close; drop: close the connection without answering; delay_s: sleep first;
    headers: extra response headers (e.g. ``{"Retry-After": "1"}``).
    """

    status: int | None = None
    body: bytes | None = None
    truncate: int | None = None
    drop: bool = False
    delay_s: float = 0.0
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    #: announce this Content-Length (with ``trickle_s``: a body that never finishes)
    length: int | None = None
    #: send the body 1 KB at a time, sleeping this long between pieces
    trickle_s: float | None = None


@dataclass
class Mirror:
    """A running mirror: its ``base_url``, per-path GET counts and the injected faults."""

    base_url: str
    root: Path
    faults: dict[str, list[Fault]]
    hits: Counter[str] = field(default_factory=Counter)
    #: 200 answers (bodies sent) per path; a 304 answer counts in ``hits`` only
    bodies: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_fault(self, path: str, *faults: Fault) -> None:
        with self.lock:
            self.faults.setdefault(path, []).extend(faults)

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            self.hits[path] += 1
            queue = self.faults.get(path, [])
            while queue and queue[0].times <= 0:
                queue.pop(0)
            if not queue:
                return None
            queue[0].times -= 1
            return queue[0]

    def total(self, suffix: str = "") -> int:
        """Number of GETs for paths ending with ``suffix`` (all when empty)."""
        with self.lock:
            return sum(n for p, n in self.hits.items() if p.endswith(suffix))

    def zip_downloads(self) -> int:
        return self.total(".zip")


def _handler(mirror: Mirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(
            self,
            status: int,
            body: bytes,
            length: int | None = None,
            headers: dict[str, str] | None = None,
            trickle_s: float | None = None,
        ) -> None:
            etag = '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
            if status == 200 and self.headers.get("If-None-Match") == etag:
                self.send_response(304)  # the body this ETag names has not changed
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if status == 200:
                with mirror.lock:
                    mirror.bodies[unquote(urlparse(self.path).path).lstrip("/")] += 1
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            ctype = "application/xml" if body.startswith(b"<?xml") else "application/octet-stream"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            if status == 200:
                self.send_header("ETag", etag)
            self.end_headers()
            if trickle_s is None:
                self.wfile.write(body)
                return
            self.close_connection = True
            try:
                for start in range(0, max(len(body), length or 0), 1024):
                    piece = body[start : start + 1024] or b"\0" * 1024
                    self.wfile.write(piece)
                    self.wfile.flush()
                    time.sleep(trickle_s)
            except OSError:
                return  # the client gave up

        def do_GET(self) -> None:
            path = unquote(urlparse(self.path).path).lstrip("/")
            fault = mirror.take_fault(path)
            if fault is not None and fault.delay_s:
                time.sleep(fault.delay_s)
            if fault is not None and fault.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault is not None and fault.status is not None:
                body = NOT_FOUND_BODY if fault.status == 404 else f"HTTP {fault.status}".encode()
                self._send(fault.status, body, headers=fault.headers)
                return
            if fault is not None and fault.body is not None:
                self._send(200, fault.body)
                return
            target = (mirror.root / path).resolve()
            if mirror.root.resolve() not in target.parents or not target.is_file():
                self._send(404, NOT_FOUND_BODY)
                return
            data = target.read_bytes()
            if fault is not None and (fault.trickle_s is not None or fault.length is not None):
                self._send(200, data, length=fault.length, trickle_s=fault.trickle_s)
                return
            if fault is not None and fault.truncate is not None:
                self.close_connection = True
                self._send(200, data[: fault.truncate], length=len(data))
                return
            self._send(200, data)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients dropping connections (and injected drops) are expected


@contextmanager
def serve_mirror(root: Path, faults: dict[str, list[Fault]] | None = None) -> Iterator[Mirror]:
    """Serve ``root`` (an archive layout) on ``http://127.0.0.1:<free port>``; yield a
    :class:`Mirror` whose ``base_url`` points at it. Stops the server on exit."""
    mirror = Mirror(base_url="", root=root, faults=dict(faults or {}))
    server = _QuietServer(("127.0.0.1", 0), _handler(mirror))
    mirror.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def refused_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- realistic archive content -------------------------------------------------------------
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    "taker_buy_quote_volume,ignore"
)
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,"
    "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,"
    "sum_taker_long_short_vol_ratio"
)
FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate"
AGGTRADES_HEADER = (
    "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
)


def _epoch_ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def klines_csv(
    day: date,
    *,
    header: bool = True,
    rows: int = 1440,
    mark: bool = False,
    seed: int = 0,
    price: float = 42000.0,
    unit: str = "ms",
) -> str:
    """Return a 1m klines (or markPriceKlines) CSV for ``day`` with ``rows`` minutes."""
    rng = np.random.default_rng(seed)
    n = rows
    start = _epoch_ms(_day_start(day))
    open_time = start + 60_000 * np.arange(n, dtype=np.int64)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    open_ = np.concatenate([[price], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.0006, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.0006, n))
    if mark:
        volume = quote = taker = taker_q = np.zeros(n)
        count = np.full(n, 60, dtype=np.int64)
    else:
        volume = rng.gamma(2.0, 60.0, n)
        quote = volume * close
        taker = volume * rng.uniform(0.3, 0.7, n)
        taker_q = taker * close
        count = rng.integers(500, 5000, n)
    scale = 1000 if unit == "us" else 1
    frame = pl.DataFrame(
        {
            "open_time": open_time * scale,
            "open": open_.round(2),
            "high": high.round(2),
            "low": low.round(2),
            "close": close.round(2),
            "volume": volume.round(3),
            "close_time": (open_time + 59_999) * scale + (999 if unit == "us" else 0),
            "quote_volume": quote.round(5),
            "count": count,
            "taker_buy_volume": taker.round(3),
            "taker_buy_quote_volume": taker_q.round(5),
            "ignore": np.zeros(n, dtype=np.int64),
        }
    )
    return frame.write_csv(include_header=header)


def metrics_csv(
    symbol: str,
    day: date,
    *,
    header: bool = True,
    convention: str = "start",
    rows: int = 288,
    shuffle: bool = False,
    double: bool = False,
    blank_ratios: bool = False,
    zero_oi_rows: tuple[int, ...] = (),
    seed: int = 0,
) -> str:
    """Return a metrics CSV; ``convention="end"`` labels 00:05 … 00:00(next day)."""
    rng = random.Random(seed)
    first = _day_start(day) + (timedelta(minutes=5) if convention == "end" else timedelta())
    lines: list[str] = []
    oi = 74000.0
    for i in range(rows):
        label = (first + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S")
        oi *= 1 + rng.gauss(0, 0.001)
        # the archive writes OI with 16 decimals (``92849.1660000000000000``)
        base = "0E-8" if i in zero_oi_rows else f"{oi:.8f}00000000"
        value = "0E-8" if i in zero_oi_rows else f"{oi * 42000:.8f}00000000"
        ratios = ",,," if blank_ratios else "".join(f"{rng.uniform(0.8, 2):.8f}," for _ in "abc")
        lines.append(f"{label},{symbol},{base},{value},{ratios}{rng.uniform(0.5, 2):.8f}")
    if double:
        lines = lines + lines
    if shuffle:
        rng.shuffle(lines)
    return (METRICS_HEADER + "\n" if header else "") + "\n".join(lines) + "\n"


def funding_csv(year: int, month: int, *, interval_hours: int = 8, header: bool = True) -> str:
    """Return a monthly fundingRate CSV (calc_time jittered by a few ms; every fifth rate is
    tiny, so it is written in the archive's exponent form, e.g. ``-1.8E-7``)."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    lines: list[str] = []
    t, i = start, 0
    while t < end:
        rate = 0.0001 * ((i % 7) - 3) if i % 5 else 1.8e-7 * ((i % 3) - 1)
        lines.append(f"{_epoch_ms(t) + 1 + i % 3},{interval_hours},{java_decimal(rate)}")
        t += timedelta(hours=interval_hours)
        i += 1
    return (FUNDING_HEADER + "\n" if header else "") + "\n".join(lines) + "\n"


def aggtrades_frame(day: date, n: int, *, seed: int = 0, price: float = 42000.0) -> pl.DataFrame:
    """Return ``n`` aggTrades rows spread over ``day`` (sorted, ms times)."""
    rng = np.random.default_rng(seed)
    start = _epoch_ms(_day_start(day))
    times = np.sort(rng.integers(start, start + 86_400_000, n))
    prices = np.round(price * np.exp(np.cumsum(rng.normal(0, 0.00005, n))), 1)
    ids = np.arange(1, n + 1, dtype=np.int64) + 1_700_000_000
    first = ids * 3
    return pl.DataFrame(
        {
            "agg_trade_id": ids,
            "price": prices,
            "quantity": np.round(rng.gamma(1.0, 0.05, n) + 0.001, 3),
            "first_trade_id": first,
            "last_trade_id": first + rng.integers(0, 3, n),
            "transact_time": times,
            "is_buyer_maker": np.where(rng.random(n) < 0.5, "true", "false"),
        }
    )


def aggtrades_csv(day: date, n: int = 5000, *, seed: int = 0, header: bool = True) -> str:
    return aggtrades_frame(day, n, seed=seed).write_csv(include_header=header)


def write_day(
    root: Path,
    symbol: str,
    day: date,
    *,
    datasets: tuple[str, ...] = ("klines", "markPriceKlines", "metrics"),
    header: bool = True,
    trades: int = 5000,
    seed: int = 0,
) -> dict[str, str]:
    """Write one symbol-day of good archive files under ``root``; return dataset -> path."""
    out: dict[str, str] = {}
    for ds in datasets:
        path = daily_path(ds, symbol, day)
        if ds == "klines":
            text = klines_csv(day, header=header, seed=seed)
        elif ds == "markPriceKlines":
            text = klines_csv(day, header=header, mark=True, seed=seed + 1)
        elif ds == "metrics":
            text = metrics_csv(symbol, day, header=header, seed=seed)
        elif ds == "aggTrades":
            text = aggtrades_csv(day, trades, seed=seed, header=header)
        else:
            raise ValueError(ds)
        write_archive_file(root, path, text)
        out[ds] = path
    return out


def write_funding(root: Path, symbol: str, year: int, month: int) -> str:
    """Write one monthly fundingRate file under ``root``; return its archive path."""
    path = monthly_path("fundingRate", symbol, year, month)
    write_archive_file(root, path, funding_csv(year, month))
    return path
