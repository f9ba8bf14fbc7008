"""Rebuild the static site from the warehouse: the one door of ``liqheat report`` and the
flows' ``build-report`` task (:mod:`flows.pipeline`) into :func:`reports.site.build_site`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flows.settings import Settings
from reports.site import SiteResult, build_site


def run_report(
    settings: Settings,
    symbols: Sequence[str] | None = None,
    *,
    days: Sequence[str] | str | int | None = None,
    force: bool = False,
    progress: Any = None,
) -> SiteResult:
    """Rebuild the static site from the warehouse (``days``: only these ranges, e.g. "3d";
    default every range the data covers). Unchanged pages are kept unless ``force``;
    ``progress(done, total)`` is called after each symbol (see `reports.site.build_site`)."""
    ranges = None if days is None else [days] if isinstance(days, str | int) else list(days)
    return build_site(
        settings.db_path,
        settings.site_dir,
        symbols=symbols,
        days=ranges,
        force=force,
        progress=progress,
    )
