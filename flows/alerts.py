"""Alerts after a pipeline run: clusters near the price -> ``alerts`` rows -> one webhook POST.

For each symbol of the run, the clusters of its headline model run (exchange ``all`` when the
run summed several exchanges, else the exchange modelled; see
:func:`warehouse.reads_outputs.headline_run`) are recomputed from the stored liquidation map with
`transforms.clusters.liquidation_clusters` (the rules the key levels use), and those within
``LIQHEAT_ALERT_DISTANCE_PCT`` of the price with at least ``LIQHEAT_ALERT_MIN_USD`` and
``LIQHEAT_ALERT_MIN_SHARE`` of their side are alerts. An alert is recorded once per
(exchange, symbol, side, cluster) while it stays true (`transforms.alerts.alert_changes`): a new
one becomes a row of the ``alerts`` table under the run id, one raised before and still true
only has its values and ``last_seen_at`` refreshed, and a stored one no longer found gets
``cleared_at``; a re-run on the same data therefore records and sends nothing new. When
``LIQHEAT_ALERT_WEBHOOK`` is set and the run raised any new alert, ONE JSON POST
``{"text": ..., "content": ...}`` (Slack and Discord read one of the two; the new alerts only)
goes to that URL, bounded by ``LIQHEAT_ALERT_TIMEOUT_S`` in total. A failed POST is logged and
returned as a note for the run summary; it never fails the run.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import httpx
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.settings import Settings

__all__ = ["AlertOutcome", "alerts_task", "post_webhook", "raise_alerts"]

_log = logging.getLogger(__name__)


@dataclass
class AlertOutcome:
    """What the alert step did: alerts raised, their messages, and the webhook result."""

    run_id: str
    #: alerts true now (new or raised before)
    alerts: int = 0
    messages: list[str] = field(default_factory=list)
    #: None: not configured or nothing to send; "sent"; else the failure
    webhook: str | None = None
    #: alerts raised by this run (the ones sent)
    new: int = 0

    def notes(self) -> list[str]:
        """Lines for the run summary."""
        line = f"alerts: {self.alerts} cluster(s) near the price (run {self.run_id})"
        if self.new != self.alerts:
            line += f": {self.new} new, {self.alerts - self.new} raised before (not sent again)"
        lines = [line]
        if self.webhook is not None:
            lines.append(f"alert webhook: {self.webhook}")
        return lines


def _host(url: str) -> str:
    """The URL without path or query (webhook URLs carry their secret in the path)."""
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "(bad URL)"


def post_webhook(url: str, text: str, *, timeout_s: float) -> str:
    """POST ``{"text": text, "content": text}`` to ``url``; return "sent" or a one-line failure.

    Never raises for HTTP, network or URL problems. The whole call is bounded by ``timeout_s``
    (plus a second): the request runs in a daemon thread with httpx's own timeouts set to
    ``timeout_s``, and a server that trickles its answer is given up on at the deadline.

    Examples
    --------
    >>> post_webhook("ftp://example.invalid/hook", "hi", timeout_s=1.0)[:55]
    'failed: POST to ftp://example.invalid: UnsupportedProto'
    """
    host = _host(url)
    result: list[str] = []

    def send() -> None:
        try:
            response = httpx.post(
                url, json={"text": text, "content": text}, timeout=httpx.Timeout(timeout_s)
            )
        except httpx.TimeoutException:
            result.append(f"failed: POST to {host} timed out after {timeout_s:g}s")
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            first = (str(exc).splitlines() or [""])[0][:200]
            result.append(f"failed: POST to {host}: {type(exc).__name__}: {first}")
        else:
            if response.is_success:
                result.append("sent")
            else:
                result.append(
                    f"failed: POST to {host} answered {response.status_code} "
                    f"{response.reason_phrase}".rstrip()
                )

    worker = threading.Thread(target=send, name="liqheat-webhook", daemon=True)
    worker.start()
    worker.join(timeout_s + 1.0)
    if not result:
        return f"failed: POST to {host} timed out after {timeout_s:g}s"
    return result[0]


def _header(count: int, settings: Settings, as_of: datetime | None) -> str:
    when = f", data to {as_of:%Y-%m-%d %H:%M} UTC" if as_of is not None else ""
    return (
        f"liqheat: {count} liquidation cluster(s) within {settings.alert_distance_pct:g}% "
        f"of the price (model estimates{when})"
    )


def raise_alerts(settings: Settings, symbols: Sequence[str], run_id: str) -> AlertOutcome:
    """Compute, store and (when configured) post the alerts of one run; see the module doc.

    Returns the outcome; the alert state is written in one transaction.
    """
    from transforms.alerts import ALERT_SCHEMA, alert_changes, alert_rows, webhook_text
    from transforms.clusters import liquidation_clusters
    from warehouse import reads_outputs as ro
    from warehouse import writes
    from warehouse.reads import query

    db = settings.db_path
    created_at = datetime.now(UTC)
    frames: list[pl.DataFrame] = []
    for symbol in dict.fromkeys(symbols):
        run = ro.headline_run(db, symbol)
        if run is None:
            continue
        liq_map = ro.latest_liquidation_map(db, run["exchange"], symbol, run["params_hash"])
        if liq_map.height == 0:
            continue
        step = float(run["price_step"])
        clusters = liquidation_clusters(liq_map, price_step=step)
        rows = alert_rows(
            clusters,
            exchange=run["exchange"],
            symbol=symbol,
            price_step=step,
            max_distance_pct=settings.alert_distance_pct,
            min_usd=settings.alert_min_usd,
            min_share=settings.alert_min_share,
        )
        frames.append(rows.with_columns(pl.lit(run["params_hash"]).alias("params_hash")))
    alerts = (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={**ALERT_SCHEMA, "params_hash": pl.String()})
    )
    checked = list(dict.fromkeys(symbols))
    active = (
        query(
            db,
            "SELECT rowid AS key, exchange, symbol, side, price, price_low, price_high "
            "FROM alerts WHERE cleared_at IS NULL AND list_contains(?, symbol)",
            [checked],
        )
        if db.exists()
        else pl.DataFrame()
    )
    new, kept, cleared = alert_changes(alerts, active)
    writes.write_alert_state(
        db,
        new=new.with_columns(
            pl.lit(run_id).alias("run_id"),
            pl.lit(created_at).alias("created_at"),
            pl.lit(created_at).alias("last_seen_at"),
        ),
        kept=kept,
        cleared=cleared,
        now=created_at,
    )
    outcome = AlertOutcome(run_id, alerts.height, alerts["message"].to_list(), new=new.height)
    url = (settings.alert_webhook or "").strip()
    if url and new.height:
        as_of = new["ts"].max()
        text = webhook_text(
            new["message"].to_list(),
            header=_header(new.height, settings, as_of if isinstance(as_of, datetime) else None),
        )
        outcome.webhook = post_webhook(url, text, timeout_s=settings.alert_timeout_s)
        if outcome.webhook == "sent":
            _log.info("alert webhook: %d alert(s) posted to %s", new.height, _host(url))
        else:
            _log.warning("alert webhook %s (the run goes on)", outcome.webhook)
    return outcome


def _run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.get_id() or uuid.uuid4())


@task(name="raise-alerts", cache_policy=NO_CACHE)
def alerts_task(home: str, symbols: list[str]) -> list[str]:
    """Raise the run's alerts (see :func:`raise_alerts`); return lines for the run summary.

    Never fails the run: an unexpected error is logged and returned as a note."""
    from pathlib import Path

    from prefect import get_run_logger

    logger: Any = get_run_logger()
    settings = Settings(home=Path(home))
    try:
        outcome = raise_alerts(settings, symbols, _run_id())
    except Exception as exc:  # alerts are a side product: report, never fail the run
        note = f"alerts failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        logger.warning(note)
        return [note]
    for line in outcome.notes():
        (logger.warning if "failed" in line else logger.info)(line)
    return outcome.notes()
