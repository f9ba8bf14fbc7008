"""The public door of the report site: :func:`build_site` renders the warehouse into a static
site (flows and the CLI call it); the rest of the site lives in one module per concern.

Layout of ``site_dir``::

    index.html                      every symbol: sparkline, strongest levels, days, links
    static/vega-bundle.js           Vega + Vega-Lite + vega-embed (classic script, no CDN)
    static/liqheat.css, liqheat.js  stylesheet and the embed bootstrap
    <SYMBOL>/index.html             the symbol's default range
    <SYMBOL>/<range>.html           heatmap, liquidation map, levels, scores, params, lineage

Modules: :mod:`reports.build` (which pages, fingerprints, worker pool, the all-or-nothing
commit), :mod:`reports.views` (a symbol's exchange views read from the warehouse),
:mod:`reports.contexts` (page contexts), :mod:`reports.render` (Jinja and its filters),
:mod:`reports.assets` (static files), :mod:`reports.files` (staged writes, safe names),
:mod:`reports.charts` (Vega-Lite specs) and :mod:`reports.frames` (display-resolution frames).
"""

from __future__ import annotations

from reports.assets import BUNDLE_NAME, VL_VERSION, bundle_header, vega_bundle, write_static
from reports.build import MIN_PARALLEL_SYMBOLS, SiteResult, build_site, code_version, site_workers
from reports.contexts import mark_stale
from reports.files import STATIC_DIR, safe_component
from reports.render import (
    environment,
    fmt_num,
    fmt_pct,
    fmt_price,
    fmt_price_step,
    fmt_step,
    fmt_time,
    fmt_usd,
)
from reports.views import exchange_label

__all__ = [
    "BUNDLE_NAME",
    "MIN_PARALLEL_SYMBOLS",
    "STATIC_DIR",
    "VL_VERSION",
    "SiteResult",
    "build_site",
    "bundle_header",
    "code_version",
    "environment",
    "exchange_label",
    "fmt_num",
    "fmt_pct",
    "fmt_price",
    "fmt_price_step",
    "fmt_step",
    "fmt_time",
    "fmt_usd",
    "mark_stale",
    "safe_component",
    "site_workers",
    "vega_bundle",
    "write_static",
]
