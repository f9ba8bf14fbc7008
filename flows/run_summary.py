"""The summary of one pipeline run: what each symbol's ingest, model and report did.

:class:`RunSummary` is filled by the flows of :mod:`flows.pipeline` as they go, printed by the
CLI (:meth:`RunSummary.render`), and recorded at the end (:func:`record_run`) as a Prefect
markdown artifact and one ``runs`` row per symbol; :func:`finish_run` ends the run Failed
(:class:`PipelineError`) when any step failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.settings import Settings
from warehouse import writes


class PipelineError(Exception):
    """Raised at the end of a run in which something failed (the run ends Failed)."""


@dataclass
class SymbolRun:
    """One symbol's part of a run: ingest outcome counts, rows, model line and timing."""

    loaded: int = 0
    skipped: int = 0
    missing: int = 0
    failed: int = 0
    rows: int = 0
    model: str = ""
    model_seconds: float | None = None
    problems: list[str] = field(default_factory=list)
    #: the model (or the exchanges' sum) of this symbol failed
    model_failed: bool = False

    def fail(self, problem: str) -> None:
        """Record a failed step of this symbol (the run ends Failed)."""
        self.model_failed = True
        self.problems.append(f"failed: {problem}")

    @property
    def is_failed(self) -> bool:
        return bool(self.failed) or self.model_failed


@dataclass
class RunSummary:
    """What one pipeline run did, per symbol, with stage timings."""

    flow: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    symbols: dict[str, SymbolRun] = field(default_factory=dict)
    ingest_seconds: float = 0.0
    model_seconds: float = 0.0
    report_seconds: float = 0.0
    site: str | None = None
    #: start-up of the Prefect server this run started (None: it used a running one)
    server_seconds: float | None = None
    #: why the site could not be built (the run ends Failed)
    report_error: str | None = None
    #: where staging ran ("host:pid" of each process that staged a job) and where loading ran
    stagers: set[str] = field(default_factory=set)
    loader: str | None = None
    stage_jobs: int = 0
    #: lines from steps that never fail the run (alerts, the alert webhook)
    notes: list[str] = field(default_factory=list)

    def symbol(self, name: str) -> SymbolRun:
        return self.symbols.setdefault(name, SymbolRun())

    @property
    def problems(self) -> list[str]:
        found = [p for run in self.symbols.values() for p in run.problems]
        return found + ([f"failed: {self.report_error}"] if self.report_error else [])

    @property
    def failed(self) -> bool:
        return bool(self.report_error) or any(r.is_failed for r in self.symbols.values())

    @property
    def ok(self) -> bool:
        return not self.problems

    def add_outcomes(self, outcomes: Sequence[dict[str, Any]]) -> None:
        for o in outcomes:
            run = self.symbol(o["symbol"])
            status = o["status"]
            setattr(run, status, getattr(run, status) + 1)
            if status == "loaded":
                run.rows += int(o.get("rows") or 0)
            if status in ("missing", "failed"):
                exchange = o.get("exchange") or "binance"
                where = "" if exchange == "binance" else f"{exchange} "
                run.problems.append(
                    f"{status}: {where}{o['dataset']} {o['day']}: {o.get('reason')}"
                )

    def staging_line(self) -> str:
        """Where the staging jobs ran and where they were loaded."""
        return (
            f"staging: {self.stage_jobs} job(s) on {len(self.stagers)} process(es) "
            f"[{', '.join(sorted(self.stagers))}]; loaded by {self.loader or '-'}"
        )

    def markdown(self) -> str:
        """The run summary as a markdown table (the Prefect artifact)."""
        lines = [
            f"**{self.flow}** started {self.started_at:%Y-%m-%d %H:%M:%S} UTC; "
            f"ingest {self.ingest_seconds:.1f}s, model {self.model_seconds:.1f}s, "
            f"report {self.report_seconds:.1f}s",
            "",
            self.staging_line(),
            "",
            "| symbol | loaded | skipped | missing | failed | rows | model s | problems |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, r in sorted(self.symbols.items()):
            model_s = f"{r.model_seconds:.2f}" if r.model_seconds is not None else ""
            problems = "<br>".join(r.problems) or ""
            lines.append(
                f"| {name} | {r.loaded} | {r.skipped} | {r.missing} | {r.failed} | "
                f"{r.rows:,} | {model_s} | {problems} |"
            )
        lines += ["", *self.notes] if self.notes else []
        return "\n".join(lines)

    def render(self) -> str:
        """The run summary as plain text for the terminal."""
        lines = ["symbol      loaded skipped missing failed       rows"]
        for name, r in sorted(self.symbols.items()):
            lines.append(
                f"{name:<11} {r.loaded:>6} {r.skipped:>7} {r.missing:>7} {r.failed:>6} "
                f"{r.rows:>10,}"
            )
        lines.extend(r.model for _, r in sorted(self.symbols.items()) if r.model)
        lines.extend(self.problems)
        lines.extend(self.notes)
        lines.append(
            f"timings: ingest {self.ingest_seconds:.1f}s, model {self.model_seconds:.1f}s, "
            f"report {self.report_seconds:.1f}s"
        )
        if self.stage_jobs:
            lines.append(self.staging_line())
        if self.server_seconds is not None:
            lines.append(f"prefect server start: {self.server_seconds:.1f}s")
        if self.site:
            lines.append(f"site: {self.site}")
        return "\n".join(lines)

    def rows_frame(self, run_id: str) -> pl.DataFrame:
        """One ``runs`` row per symbol."""
        finished = datetime.now(UTC)
        return pl.DataFrame(
            [
                {
                    "run_id": run_id,
                    "flow": self.flow,
                    "symbol": name,
                    "started_at": self.started_at,
                    "finished_at": finished,
                    "status": "failed" if r.is_failed or self.report_error else "completed",
                    "days_loaded": r.loaded,
                    "days_skipped": r.skipped,
                    "days_missing": r.missing,
                    "days_failed": r.failed,
                    "rows": r.rows,
                    "ingest_seconds": self.ingest_seconds,
                    "model_seconds": r.model_seconds,
                    "report_seconds": self.report_seconds,
                    "problems": "\n".join(r.problems) or None,
                }
                for name, r in sorted(self.symbols.items())
            ],
            schema_overrides={"model_seconds": pl.Float64, "problems": pl.String},
        )


def record_run(settings: Settings, summary: RunSummary) -> None:
    """Publish the run summary: a Prefect markdown artifact and rows in ``runs``."""
    run_id = str(flow_run.get_id() or uuid.uuid4())
    create_markdown_artifact(
        key="liqheat-run-summary", markdown=summary.markdown(), description="liqheat run summary"
    )
    writes.replace_partition(
        settings.db_path, "runs", {"run_id": run_id}, summary.rows_frame(run_id)
    )
    get_run_logger().info(
        "run summary recorded: runs table (run_id %s) and artifact liqheat-run-summary", run_id
    )


def finish_run(settings: Settings, summary: RunSummary) -> str:
    """Record the summary; end the run Failed (by raising) when any file failed."""
    record_run(settings, summary)
    if summary.failed:
        failed = [p for p in summary.problems if p.startswith("failed")]
        raise PipelineError(f"{len(failed)} failure(s); first: {failed[0]}")
    return summary.render()
