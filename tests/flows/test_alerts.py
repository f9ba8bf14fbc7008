"""Alerts after a run, against a real DuckDB file and a real HTTP server on 127.0.0.1:
success, 500 and timeout; a failed POST never fails the run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from flows.alerts import post_webhook, raise_alerts
from flows.settings import Settings
from transforms.clusters import cluster_key_levels
from warehouse import reads_outputs as ro
from warehouse.reads import query
from warehouse.writes import write_model_outputs

T0 = datetime(2026, 6, 8, tzinfo=UTC)
SECRET_PATH = "/hooks/T000/SECRET-TOKEN"


@dataclass
class Hook:
    """What the local webhook server answers, and what it received."""

    status: int = 200
    delay_s: float = 0.0
    bodies: list[dict[str, object]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    url: str = ""


@contextmanager
def serve_hook(hook: Hook) -> Iterator[Hook]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            hook.paths.append(self.path)
            hook.bodies.append(json.loads(self.rfile.read(length)))
            if hook.delay_s:
                time.sleep(hook.delay_s)
            try:
                self.send_response(hook.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:  # the client gave up (timeout test)
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _store(db: Path, symbol: str, exchange: str, ref: float, computed_at: datetime) -> None:
    """One model run whose map has a long cluster at -1 % ($300M), one at -10 % ($900M) and a
    short one at +2 % ($40M, and 40 / 40 = 100 % of its side)."""
    step = 50.0 if ref > 10_000 else 1.0
    prices = [ref * 0.90, ref * 0.99, ref * 1.02]
    liq_map = pl.DataFrame(
        {
            "as_of": [T0 + timedelta(days=1)] * 3,
            "ref_price": [ref] * 3,
            "price": [round(p / step) * step for p in prices],
            "long_usd": [9e8, 3e8, 0.0],
            "short_usd": [0.0, 0.0, 4e7],
            "long_cum_usd": [1.2e9, 3e8, 0.0],
            "short_cum_usd": [0.0, 0.0, 4e7],
        }
    )
    write_model_outputs(
        db,
        exchange=exchange,
        symbol=symbol,
        params_hash="p1",
        run=pl.DataFrame(
            {
                "params_json": ["{}"],
                "start_ts": [T0],
                "end_ts": [T0 + timedelta(days=1)],
                "bars": [1440],
                "levels": [3],
                "price_step": [step],
                "seconds": [0.1],
                "computed_at": [computed_at],
            }
        ),
        outputs={
            "liquidation_map": liq_map,
            "key_levels": cluster_key_levels(liq_map, price_step=step),
        },
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    now = datetime.now(UTC) - timedelta(minutes=5)
    _store(home / "liqheat.duckdb", "BTCUSDT", "binance", 64_000.0, now)
    _store(home / "liqheat.duckdb", "BTCUSDT", "all", 64_000.0, now + timedelta(seconds=1))
    _store(home / "liqheat.duckdb", "ETHUSDT", "binance", 3_200.0, now)
    return home


def test_alerts_are_stored_and_posted_once_per_run(home: Path) -> None:
    with serve_hook(Hook()) as hook:
        settings = Settings(home=home, alert_webhook=hook.url, alert_min_usd=5e7)
        outcome = raise_alerts(settings, ["BTCUSDT", "ETHUSDT", "SOLUSDT"], "run-1")
    assert outcome.webhook == "sent"
    assert outcome.alerts == 2  # per symbol the -1 % longs; +2 % shorts ($40M) are too small
    assert len(hook.bodies) == 1
    body = hook.bodies[0]
    assert set(body) == {"text", "content"}
    assert body["text"] == body["content"]
    text = str(body["text"])
    assert text.splitlines()[0].startswith("liqheat: 2 liquidation cluster(s) within 3% of the")
    assert "- BTCUSDT: $300.0M of longs at 63,350 (63,350-63,400), -1.0% from 64,000" in text
    assert "- ETHUSDT binance: $300.0M of longs at 3,168 (3,168-3,169), -1.0% from 3,200" in text
    rows = query(
        home / "liqheat.duckdb",
        "SELECT run_id, exchange, symbol, side, price, usd, message FROM alerts ORDER BY symbol",
    )
    assert rows.select("run_id", "exchange", "symbol", "side", "price").rows() == [
        ("run-1", "all", "BTCUSDT", "long", 63_350.0),  # the aggregate is the headline run
        ("run-1", "binance", "ETHUSDT", "long", 3_168.0),
    ]
    assert rows["message"].to_list() == [line[2:] for line in text.splitlines()[1:]]
    assert (
        ro.latest_alerts(home / "liqheat.duckdb")["message"].to_list() == rows["message"].to_list()
    )
    # rerunning the step on the same data records nothing new
    again = raise_alerts(Settings(home=home, alert_min_usd=5e7), ["BTCUSDT"], "run-1")
    assert again.webhook is None  # no webhook configured: nothing posted
    assert query(home / "liqheat.duckdb", "SELECT count(*) AS n FROM alerts")["n"].item() == 2


def test_an_alert_is_recorded_and_sent_once_while_it_stays_true(home: Path) -> None:
    """A second identical run (issue 21: a second demo run doubled the alerts) adds no row and
    sends nothing; when the cluster is no longer near, the alert is cleared; when it comes
    back, it is a new alert and sent again."""
    db = home / "liqheat.duckdb"
    with serve_hook(Hook()) as hook:
        settings = Settings(home=home, alert_webhook=hook.url, alert_min_usd=5e7)
        first = raise_alerts(settings, ["BTCUSDT", "ETHUSDT"], "run-1")
        second = raise_alerts(settings, ["BTCUSDT", "ETHUSDT"], "run-2")
        assert len(hook.bodies) == 1  # the second run sent nothing
        assert (first.new, second.new, second.alerts) == (2, 0, 2)
        assert second.webhook is None
        assert second.notes()[0].endswith("0 new, 2 raised before (not sent again)")
        stored = query(db, "SELECT run_id, cleared_at FROM alerts ORDER BY symbol")
        assert stored.rows() == [("run-1", None), ("run-1", None)]
        assert ro.latest_alerts(db).height == 2
        # the -1 % cluster is no longer within 0.5 %: cleared, the banner empties
        narrow = Settings(home=home, alert_webhook=hook.url, alert_distance_pct=0.5)
        assert raise_alerts(narrow, ["BTCUSDT"], "run-3").alerts == 0
        cleared = query(db, "SELECT symbol FROM alerts WHERE cleared_at IS NOT NULL")
        assert cleared["symbol"].to_list() == ["BTCUSDT"]
        assert ro.latest_alerts(db)["symbol"].to_list() == ["ETHUSDT"]
        back = raise_alerts(settings, ["BTCUSDT"], "run-4")
        assert back.new == 1
        assert len(hook.bodies) == 2
        assert "BTCUSDT" in str(hook.bodies[1]["text"])
    assert query(db, "SELECT count(*) AS n FROM alerts")["n"].item() == 3


def test_thresholds_come_from_the_settings(home: Path) -> None:
    wide = raise_alerts(Settings(home=home, alert_min_usd=1e7), ["BTCUSDT"], "r")
    assert [m.split(": ")[1].split(" of ")[1][:6] for m in wide.messages] == ["longs ", "shorts"]
    near = raise_alerts(Settings(home=home, alert_distance_pct=0.5), ["BTCUSDT"], "r")
    assert near.alerts == 0
    far = raise_alerts(
        Settings(home=home, alert_distance_pct=15, alert_min_usd=5e8), ["BTCUSDT"], "r"
    )
    assert far.messages == [
        "BTCUSDT: $900.0M of longs at 57,600 (57,600-57,650), -10.0% from 64,000"
    ]
    share = raise_alerts(
        Settings(home=home, alert_distance_pct=15, alert_min_share=0.5), ["BTCUSDT"], "r"
    )
    assert [m.split(" at ")[1][:6] for m in share.messages] == ["65,300", "57,600"]


def test_no_alerts_no_post(home: Path) -> None:
    with serve_hook(Hook()) as hook:
        out = raise_alerts(
            Settings(home=home, alert_webhook=hook.url, alert_distance_pct=0.1), ["BTCUSDT"], "r"
        )
    assert (out.alerts, out.webhook, hook.bodies) == (0, None, [])
    assert out.notes() == ["alerts: 0 cluster(s) near the price (run r)"]


def test_a_500_is_reported_and_the_alerts_are_kept(home: Path) -> None:
    with serve_hook(Hook(status=500)) as hook:
        out = raise_alerts(Settings(home=home, alert_webhook=hook.url), ["BTCUSDT"], "r5")
    assert len(hook.bodies) == 1
    host = hook.url.removesuffix(SECRET_PATH)
    assert out.webhook == f"failed: POST to {host} answered 500 Internal Server Error"
    assert "SECRET" not in " ".join(out.notes())
    assert out.notes()[-1].startswith("alert webhook: failed: POST to http://127.0.0.1:")
    assert ro.latest_alerts(home / "liqheat.duckdb")["run_id"].to_list() == ["r5", "r5"]


def test_a_slow_server_times_out(home: Path) -> None:
    with serve_hook(Hook(delay_s=3.0)) as hook:
        out = raise_alerts(
            Settings(home=home, alert_webhook=hook.url, alert_timeout_s=0.3), ["BTCUSDT"], "rt"
        )
        assert len(hook.bodies) == 1
    assert out.webhook is not None
    assert out.webhook.endswith("timed out after 0.3s")
    assert out.alerts == 2  # the -1 % longs and the +2 % shorts


def test_unreachable_and_malformed_urls_do_not_raise() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = post_webhook(f"http://127.0.0.1:{port}/x", "hi", timeout_s=2.0)
    assert refused.startswith(f"failed: POST to http://127.0.0.1:{port}: ConnectError")
    assert post_webhook("not a url", "hi", timeout_s=1.0).startswith("failed: POST to (bad URL)")


@pytest.mark.slow
def test_demo_run_completes_when_the_webhook_fails(
    tmp_path: Path, prefect_harness: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.prefect_runtime import run_demo

    with serve_hook(Hook(status=500)) as hook:
        monkeypatch.setenv("LIQHEAT_ALERT_WEBHOOK", hook.url)
        monkeypatch.setenv("LIQHEAT_ALERT_MIN_USD", "0")
        monkeypatch.setenv("LIQHEAT_ALERT_MIN_SHARE", "0")
        home = tmp_path / "home"
        summary = run_demo(Settings(home=home), ["BTCUSDT"], days=1, seed=5, end=date(2026, 6, 10))
    assert len(hook.bodies) == 1  # one POST for the run
    assert summary.site is not None
    notes = "\n".join(summary.notes)
    assert "answered 500" in notes
    assert "answered 500" in summary.render()
    alerts = ro.latest_alerts(home / "liqheat.duckdb")
    assert alerts.height > 0
    runs = query(home / "liqheat.duckdb", "SELECT run_id, status FROM runs")
    assert set(alerts["run_id"]) == set(runs["run_id"])  # the run id of the runs table
    assert runs["status"].to_list() == ["completed"]
