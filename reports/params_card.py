"""The model-run card: the run's parameters (its ``params_json``) as a small table of named
parameters with units and one-line meanings, and the exchange's notional brackets as a table."""

from __future__ import annotations

import json
from typing import Any

#: parameter -> (name on the page, unit, one-line meaning); unknown keys are shown as stored
PARAM_DOCS: dict[str, tuple[str, str, str]] = {
    "turnover_half_life_hours": (
        "turnover half-life",
        "h",
        "open positions close and reopen at this half-life",
    ),
    "turnover_volume": ("turnover follows volume", "", "busier hours turn positions over faster"),
    "volume_mean_hours": (
        "volume mean window",
        "h",
        "the volume that turnover is measured against",
    ),
    "leverage_median": ("median leverage", "x", "centre of the leverage density"),
    "leverage_sigma": ("leverage spread", "log", "width of the leverage density (log scale)"),
    "leverage_min": ("lowest leverage", "x", "the density starts here"),
    "leverage_max": ("highest leverage", "x", "the density ends here"),
    "leverage_bins": ("leverage bins", "", "leverage values the density is cut into"),
    "side_tilt": ("side tilt", "log", "positive: longs more leveraged than shorts"),
    "leverages": ("fixed leverage tiers", "x", "explicit tiers instead of the density"),
    "weights": ("tier shares", "", "share of new positions per fixed tier"),
    "mmr": ("maintenance margin", "rate", "used when no brackets are given"),
    "position_usd": ("typical position", "USD", "notional a position is taken to have"),
    "intrabar": ("liquidate inside a bar", "", "positions opened in a bar can die in the same bar"),
    "entry_points": ("entries per bar", "", "at most this many entry prices per bar"),
    "entry_resolution": (
        "entry spacing",
        "of range",
        "one entry per this share of the bar's range",
    ),
    "oi_decrease": ("open-interest decrease", "", "how falling open interest closes positions"),
    "decay_half_life_hours": ("extra decay half-life", "h", "optional extra fading of open levels"),
    "price_step": ("price step", "USDT", "size of the model's price buckets"),
}


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.10g}"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def param_table(params_json: str, price_step: float | None) -> dict[str, Any]:
    """Rows (name, value, unit, meaning) of the run's parameters and, when the run used
    notional brackets, their table (up to USD, maintenance rate, amount, max leverage).
    ``price_step`` is the step the run used (shown for an automatic ``price_step``).

    Examples
    --------
    >>> j = '{"mmr": 0.004, "price_step": null, "brackets": [[5e4, 0.004, 0, 125]]}'
    >>> t = param_table(j, 100.0)
    >>> [(r["name"], r["value"]) for r in t["rows"]]
    [('maintenance margin', '0.004'), ('price step', '100 (auto)')]
    >>> t["brackets"][0]["max_leverage"]
    '125'
    """
    try:
        parsed = json.loads(params_json)
    except (TypeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        return {
            "rows": [{"name": "parameters", "value": str(params_json), "unit": "", "meaning": ""}],
            "brackets": [],
        }
    rows = []
    brackets: list[dict[str, str]] = []
    for key, value in sorted(parsed.items()):
        if key == "brackets":
            for b in value or []:
                if isinstance(b, list | tuple) and len(b) >= 4:
                    brackets.append(
                        {
                            "up_to": f"{float(b[0]):,.0f}",
                            "mmr": f"{float(b[1]) * 100:.2f} %",
                            "amount": f"{float(b[2]):,.0f}",
                            "max_leverage": f"{float(b[3]):g}",
                        }
                    )
            continue
        name, unit, meaning = PARAM_DOCS.get(key, (key, "", ""))
        text = _text(value)
        if key == "price_step" and value is None and price_step:
            text = f"{price_step:,.8g} (auto)"
        if key in ("leverages", "weights") and value is None:
            continue  # the density is used: nothing to show
        rows.append({"name": name, "value": text, "unit": unit, "meaning": meaning})
    return {"rows": rows, "brackets": brackets}
