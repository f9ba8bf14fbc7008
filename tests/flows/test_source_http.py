"""RestClient against a real HTTP server on 127.0.0.1: retries, Retry-After, 404, other 4xx,
bounded retries, rate limiting (asserted on request times recorded by the server).

:func:`serve_api` is reused by the OKX and Binance COIN-M source tests.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import pytest

from flows.sources.http import (
    DecodeError,
    HttpError,
    NetworkError,
    NotFoundError,
    RateLimiter,
    RestClient,
    parse_retry_after,
)
from tests.httpmirror import refused_url


@dataclass
class Reply:
    """What the test server answers: status, body (bytes, or JSON-able), extra headers."""

    status: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    #: announce the full length but send only this many bytes, then close
    truncate: int | None = None


@dataclass
class Hit:
    """One request the server received: monotonic arrival time, path and query."""

    at: float
    path: str
    query: dict[str, str]


Handler = Callable[[str, dict[str, str]], Reply]


@dataclass
class Api:
    base_url: str
    hits: list[Hit]
    lock: threading.Lock

    def paths(self) -> list[str]:
        with self.lock:
            return [h.path for h in self.hits]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@contextmanager
def serve_api(handler: Handler) -> Iterator[Api]:
    """Serve ``handler(path, query) -> Reply`` on 127.0.0.1; record every request."""
    api = Api("", [], threading.Lock())

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = dict(parse_qsl(url.query))
            with api.lock:
                api.hits.append(Hit(time.monotonic(), url.path, query))
            reply = handler(url.path, query)
            if isinstance(reply.body, bytes):
                body, ctype = reply.body, "application/octet-stream"
            else:
                body, ctype = json.dumps(reply.body).encode(), "application/json"
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if reply.truncate is not None:
                self.close_connection = True
                body = body[: reply.truncate]
            self.wfile.write(body)

    server = _Server(("127.0.0.1", 0), H)
    api.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def scripted(*replies: Reply, then: Reply | None = None) -> Handler:
    """A handler answering ``replies`` in order, then ``then`` (default: 200 ``{"ok": n}``)."""
    queue = list(replies)
    lock = threading.Lock()
    count = [0]

    def handle(path: str, query: dict[str, str]) -> Reply:
        with lock:
            count[0] += 1
            if queue:
                return queue.pop(0)
            return then or Reply(200, {"ok": count[0], "query": query})

    return handle


def client(base_url: str, **kw: object) -> RestClient:
    opts: dict[str, object] = {"rate_per_s": 1000.0, "backoff_s": 0.001, "backoff_max_s": 0.01}
    opts.update(kw)
    return RestClient(base_url, **opts)  # type: ignore[arg-type]


def test_503_then_200_is_retried() -> None:
    with serve_api(scripted(Reply(503), Reply(502))) as api, client(api.base_url) as c:
        body = c.get_json("/api/v5/x", {"instId": "BTC-USDT-SWAP", "limit": 100})
    assert body == {"ok": 3, "query": {"instId": "BTC-USDT-SWAP", "limit": "100"}}
    assert api.paths() == ["/api/v5/x"] * 3


def test_429_retry_after_is_honoured_up_to_the_cap() -> None:
    replies = (Reply(429, {"code": "50011"}, {"Retry-After": "0.3"}),)
    with serve_api(scripted(*replies)) as api, client(api.base_url, backoff_max_s=5.0) as c:
        assert c.get_json("x")["ok"] == 2
    first, second = api.hits
    assert second.at - first.at >= 0.28  # waited for the hint, not the 1 ms backoff
    # a hint beyond the cap is cut to the cap
    with (
        serve_api(scripted(Reply(429, None, {"Retry-After": "3600"}))) as api,
        client(api.base_url, backoff_max_s=0.05) as c,
    ):
        assert c.get_json("x")["ok"] == 2
        assert api.hits[1].at - api.hits[0].at < 2.0  # capped at 0.05 s, not 3600 s


def test_404_is_missing_at_once() -> None:
    with (
        serve_api(scripted(then=Reply(404, {"msg": "nope"}))) as api,
        client(api.base_url) as c,
        pytest.raises(NotFoundError) as err,
    ):
        c.get_json("/gone")
    assert err.value.kind == "missing"
    assert err.value.status == 404
    assert "\n" not in str(err.value)
    assert "404" in str(err.value)
    assert len(api.hits) == 1


@pytest.mark.parametrize("status", [400, 401, 403])
def test_other_4xx_raise_at_once(status: int) -> None:
    with (
        serve_api(scripted(then=Reply(status, {"code": "51000"}))) as api,
        client(api.base_url) as c,
        pytest.raises(HttpError) as err,
    ):
        c.get_json("/bad")
    assert err.value.kind == "http"
    assert err.value.status == status
    assert str(err.value).startswith(f"HTTP {status}")
    assert len(api.hits) == 1


def test_bounded_retries_give_up() -> None:
    with (
        serve_api(scripted(then=Reply(503))) as api,
        client(api.base_url, retries=3) as c,
        pytest.raises(NetworkError) as err,
    ):
        c.get_json("/down")
    assert err.value.kind == "network"
    assert err.value.status == 503
    assert "4 tries" in str(err.value)
    assert "\n" not in str(err.value)
    assert len(api.hits) == 4


def test_retries_zero_means_one_attempt() -> None:
    with (
        serve_api(scripted(then=Reply(500))) as api,
        client(api.base_url, retries=0) as c,
        pytest.raises(NetworkError),
    ):
        c.get_json("/down")
    assert len(api.hits) == 1


def test_refused_connection_is_a_network_error() -> None:
    with client(refused_url(), retries=2) as c, pytest.raises(NetworkError) as err:
        c.get_json("/x")
    assert "connection refused" in str(err.value)
    assert "3 tries" in str(err.value)


def test_non_json_200_is_a_parse_error() -> None:
    page = Reply(200, b"<html>maintenance</html>")
    with (
        serve_api(scripted(then=page)) as api,
        client(api.base_url) as c,
        pytest.raises(DecodeError) as err,
    ):
        c.get_json("/x")
    assert err.value.kind == "parse"
    assert "maintenance" in str(err.value)


def test_rate_limit_spaces_requests_across_threads() -> None:
    rate = 10.0  # one request every 100 ms
    with serve_api(scripted()) as api, client(api.base_url, rate_per_s=rate) as c:
        threads = [threading.Thread(target=c.get_json, args=("/t",)) for _ in range(4)]
        for _ in range(3):
            c.get_json("/t")
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    times = sorted(h.at for h in api.hits)
    assert len(times) == 7
    # Server-side arrival times jitter (connection set-up, a busy machine), so the bounds are
    # generous: 7 requests span at least 6 intervals of 0.1 s (75 % of it), and no 0.25 s
    # window holds more than 1 + 0.25 * rate = 3 requests (+1 for jitter).
    assert times[-1] - times[0] >= 0.75 * 6 / rate
    assert max(sum(1 for t in times if s <= t < s + 0.25) for s in times) <= 4


def test_clients_of_one_host_share_the_limit() -> None:
    rate = 10.0
    with (
        serve_api(scripted()) as api,
        client(api.base_url, rate_per_s=rate) as a,
        client(api.base_url, rate_per_s=rate) as b,
    ):
        assert a.limiter is b.limiter
        threads = [threading.Thread(target=c.get_json, args=("/t",)) for c in (a, b) * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    times = sorted(h.at for h in api.hits)
    assert len(times) == 6
    assert times[-1] - times[0] >= 0.75 * 5 / rate  # one bucket: 6 requests, 5 intervals
    own = RateLimiter(1.0)
    with client("http://127.0.0.1:9", rate_per_s=rate, limiter=own) as c:
        assert c.limiter is own


def test_retries_also_take_tokens() -> None:
    rate = 10.0
    with (
        serve_api(scripted(Reply(503), Reply(503))) as api,
        client(api.base_url, rate_per_s=rate) as c,
    ):
        c.get_json("/x")
    times = [h.at for h in api.hits]
    assert len(times) == 3
    # the 1 ms backoff alone would send all three within a few ms
    assert times[-1] - times[0] >= 0.75 * 2 / rate


def test_token_bucket_with_fake_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = RateLimiter(2.5, burst=2, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([0.4, 0.4, 0.4])
    now[0] += 10.0  # idle: refills, but only up to the burst
    assert [bucket.acquire(), bucket.acquire()] == [0.0, 0.0]
    assert bucket.acquire() == pytest.approx(0.4)
    with pytest.raises(ValueError, match="rate_per_s"):
        RateLimiter(0)


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("garbage") is None
    now = datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:07 GMT", now=now) == 7.0


def test_download_is_atomic_and_retries_a_truncated_body(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000
    handler = scripted(Reply(503), Reply(200, payload, truncate=1000), then=Reply(200, payload))
    target = tmp_path / "raw" / "f.zip"
    with serve_api(handler) as api, client(api.base_url) as c:
        got = c.download("/cdn/f.zip", target)
    assert target.read_bytes() == payload
    assert got.size == len(payload)
    assert got.sha256 == hashlib.sha256(payload).hexdigest()
    assert len(api.hits) == 3
    assert [p.name for p in target.parent.iterdir()] == ["f.zip"]  # no .part left behind
    with (
        serve_api(scripted(then=Reply(404))) as api,
        client(api.base_url) as c,
        pytest.raises(NotFoundError),
    ):
        c.download("/cdn/g.zip", tmp_path / "raw" / "g.zip")
    assert not (tmp_path / "raw" / "g.zip").exists()
    with (
        serve_api(scripted(then=Reply(200, payload, truncate=10))) as api,
        client(api.base_url, retries=1) as c,
        pytest.raises(NetworkError),
    ):
        c.download("/cdn/h.zip", tmp_path / "raw" / "h.zip")
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.zip"]


def test_base_url_is_validated() -> None:
    with pytest.raises(ValueError, match="http"):
        RestClient("ftp://x", rate_per_s=1.0)
