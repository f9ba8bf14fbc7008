"""A loopback stand-in for the exchanges' public REST market data (the top-up's endpoints).

One real HTTP server on 127.0.0.1 (:func:`tests.flows.test_source_http.serve_api`) answers
Binance USD-M, Bybit v5 and OKX v5 paths over a SYNTHETIC minute series that exists up to
``now`` (the bar in progress included, as the live endpoints serve it). The answers copy the
layouts of the real captures and docs examples in ``../shared/data/real-samples/rest/``: every
row is built on the sample's own row as a template, so each slot keeps the sample's JSON type
(strings for prices and volumes, numbers where the sample has numbers), the key order of the
sample objects, the sample's order (Binance klines oldest first; Bybit, OKX and Binance's
``openInterestHist`` newest first) and the venue's paging (``startTime`` forward; ``end``,
``after``, ``cursor`` backwards; limits clamped to the documented maxima, OKX's recent candles
only for the latest 1,440 bars). ``fail`` holds paths answered ``503`` every time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from tests.flows.test_source_http import Api, Reply, serve_api

REST = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-samples" / "rest"
MIN = 60_000


def sample(name: str) -> Any:
    """The decoded JSON of one real sample under ``real-samples/rest/``."""
    return json.loads((REST / name).read_text())


def like(template: Any, value: Any) -> Any:
    """``value`` in the JSON type of ``template`` (a string stays a string, a number a number).

    >>> like("0.1", 2.5), like(1499040000000, 5), like("1", 7)
    ('2.5', 5, '7')
    """
    if isinstance(template, str):
        return (
            value
            if isinstance(value, str)
            else f"{value:.8g}"
            if isinstance(value, float)
            else str(value)
        )
    if isinstance(template, int):
        return int(value)
    return value


def price(ms: int) -> float:
    """The synthetic price at minute ``ms``."""
    return round(42_000 + 300 * math.sin(ms / 3_600_000), 1)


@dataclass
class RestVenues:
    """The stand-in's state: the clock (``now_ms``), failing paths and the server."""

    now_ms: int
    fail: set[str] = field(default_factory=set)
    api: Api | None = None

    @property
    def base_url(self) -> str:
        assert self.api is not None
        return self.api.base_url

    def calls(self, path: str) -> list[dict[str, str]]:
        assert self.api is not None
        return [h.query for h in self.api.hits if h.path == path]

    # -- the minute series ---------------------------------------------------------------------
    def _bar(self, t: int, step: int = MIN) -> tuple[float, float, float, float, float]:
        o, c = price(t), price(t + step - 1)
        return o, max(o, c) + 5.0, min(o, c) - 5.0, c, 10.0 + (t // MIN) % 7

    def _opens(self, lo: int, hi: int, step: int = MIN) -> list[int]:
        """Open times in ``[lo, hi]`` of bars that have opened by ``now``."""
        first = -(-lo // step) * step
        last = min(hi, self.now_ms)
        return list(range(first, last + 1, step)) if first <= last else []

    # -- dispatch --------------------------------------------------------------------------------
    def __call__(self, path: str, q: dict[str, str]) -> Reply:
        if path in self.fail:
            return Reply(503, b"service unavailable")
        handlers = {
            "/fapi/v1/klines": self._binance_klines,
            "/fapi/v1/markPriceKlines": self._binance_klines,
            "/futures/data/openInterestHist": self._binance_oi,
            "/v5/market/kline": self._bybit_kline,
            "/v5/market/mark-price-kline": self._bybit_kline,
            "/v5/market/open-interest": self._bybit_oi,
            "/api/v5/market/candles": self._okx_candles,
            "/api/v5/market/history-candles": self._okx_candles,
            "/api/v5/market/mark-price-candles": self._okx_candles,
            "/api/v5/market/history-mark-price-candles": self._okx_candles,
            "/api/v5/rubik/stat/contracts/open-interest-history": self._okx_oi,
        }
        handler = handlers.get(path)
        return handler(path, q) if handler else Reply(404, {"msg": "no such path"})

    # -- Binance ---------------------------------------------------------------------------------
    def _binance_klines(self, path: str, q: dict[str, str]) -> Reply:
        mark = "markPrice" in path
        template = sample(
            f"binance-um/{'markPriceKlines' if mark else 'klines'}.docs-example.json"
        )[0]
        limit = min(int(q.get("limit", 500)), 1500)
        opens = self._opens(int(q["startTime"]), int(q.get("endTime", self.now_ms)))[:limit]
        rows = []
        for t in opens:
            o, h, lo, c, v = self._bar(t)
            vol = (0, 0, 60, 0, 0) if mark else (v, v * c, 100, v / 2, v * c / 2)
            values = [t, o, h, lo, c, vol[0], t + MIN - 1, vol[1], vol[2], vol[3], vol[4], "0"]
            rows.append([like(s, x) for s, x in zip(template, values, strict=True)])
        return Reply(200, rows)  # oldest first

    def _binance_oi(self, path: str, q: dict[str, str]) -> Reply:
        template = sample("binance-um/openInterestHist.BTCUSDT-5m.quoted-2026-10-06.json")[0]
        limit = min(int(q.get("limit", 30)), 500)
        stamps = self._opens(int(q["startTime"]), int(q["endTime"]), 5 * MIN)[:limit]
        rows = []
        for t in reversed(stamps):  # newest first, as the 2026 answer
            base = 90_000.0 + (t // MIN) % 50
            values = {
                "symbol": q["symbol"],
                "sumOpenInterest": f"{base:.8f}",
                "sumOpenInterestValue": f"{base * price(t):.8f}",
                "CMCCirculatingSupply": "20094037.00000000",
                "timestamp": t,
            }
            rows.append({k: like(template[k], values[k]) for k in template})
        return Reply(200, rows)

    # -- Bybit -----------------------------------------------------------------------------------
    def _bybit_kline(self, path: str, q: dict[str, str]) -> Reply:
        mark = "mark-price" in path
        name = "mark-price-kline.docs-example.json" if mark else "kline.docs-example-inverse.json"
        body = sample(f"bybit/{name}")
        template = body["result"]["list"][0]
        step = int(q.get("interval", "1")) * MIN
        limit = min(int(q.get("limit", 200)), 1000)
        opens = self._opens(int(q["start"]), int(q.get("end", self.now_ms)), step)
        rows = []
        for t in reversed(opens[-limit:]):  # the newest `limit` bars, newest first
            o, h, lo, c, v = self._bar(t, step)
            rows.append(
                [like(s, x) for s, x in zip(template, [t, o, h, lo, c, v, v * c], strict=False)]
            )
        body["result"].update({"symbol": q["symbol"], "category": "linear", "list": rows})
        return Reply(200, body)

    def _bybit_oi(self, path: str, q: dict[str, str]) -> Reply:
        limit = min(int(q.get("limit", 50)), 200)
        hi = int(q["endTime"])
        if "cursor" in q:  # lastid=..&lasttime=<seconds>: rows older than lasttime
            last = dict(p.split("=") for p in unquote(q["cursor"]).split("&"))
            hi = int(last["lasttime"]) * 1000 - 1
        stamps = self._opens(int(q["startTime"]), hi, 5 * MIN)
        page = list(reversed(stamps))[:limit]
        rows = [
            {"openInterest": f"{60_000 + (t // MIN) % 40:.3f}", "timestamp": str(t)} for t in page
        ]
        more = len(stamps) > limit
        cursor = quote(f"lastid={len(page)}&lasttime={page[-1] // 1000}", safe="") if more else ""
        result = {
            "symbol": q["symbol"],
            "category": "linear",
            "list": rows,
            "nextPageCursor": cursor,
        }
        return Reply(200, {"retCode": 0, "retMsg": "OK", "result": result, "time": self.now_ms})

    # -- OKX -------------------------------------------------------------------------------------
    def _okx_candles(self, path: str, q: dict[str, str]) -> Reply:
        mark = "mark-price" in path
        name = (
            "mark-price-candles.docs-example.json"
            if mark
            else "candles.BTC-1m.capture-2025-05-12.json"
        )
        body = sample(f"okx/{name}")
        template = body["data"][0]
        limit = min(int(q.get("limit", 100)), 100 if mark else 300)
        before = int(q.get("after", self.now_ms + 1))
        lo = before - 1 - limit * MIN
        if "history" not in path:  # the recent endpoints keep the latest 1,440 bars only
            lo = max(lo, self.now_ms - 1439 * MIN)
        opens = self._opens(lo, before - 1)
        rows = []
        for t in reversed(opens[-limit:]):
            o, h, lo, c, v = self._bar(t)
            confirm = "1" if t + MIN <= self.now_ms else "0"
            values = (
                [t, o, h, lo, c, confirm] if mark else [t, o, h, lo, c, v * 100, v, v * c, confirm]
            )
            rows.append([like(s, x) for s, x in zip(template, values, strict=True)])
        return Reply(200, {"code": "0", "msg": "", "data": rows})

    def _okx_oi(self, path: str, q: dict[str, str]) -> Reply:
        limit = min(int(q.get("limit", 100)), 100)
        stamps = self._opens(int(q["begin"]) + 1, int(q["end"]) - 1, 5 * MIN)
        rows = [
            [
                str(t),
                str(1000 + (t // MIN) % 30),
                f"{10 + (t // MIN) % 30 / 100:.2f}",
                f"{(10 + (t // MIN) % 30 / 100) * price(t):.1f}",
            ]
            for t in reversed(stamps[-limit:])
        ]
        return Reply(200, {"code": "0", "msg": "", "data": rows})


@contextmanager
def serve_rest(now: datetime) -> Iterator[RestVenues]:
    """Serve the stand-in with its clock at ``now`` on 127.0.0.1."""
    venues = RestVenues(int(now.timestamp() * 1000))
    with serve_api(venues) as api:
        venues.api = api
        yield venues
