"""Which exchanges liqheat can ingest, and how to build each one's :class:`Source`.

Every source module provides a factory ``from_settings(settings, *, base_url=None) -> Source``
(``base_url`` overrides the exchange's main public-data root, e.g. a local mirror in tests).
Registering an exchange is one line in :data:`EXCHANGES`: ``"name": "module:function"``. The
module is imported only when the exchange is used, so a registry import stays cheap.

Examples
--------
>>> sorted(EXCHANGES)[:1]
['binance']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from flows.settings import Settings
    from flows.sources.base import Source

#: exchange id -> "module:factory"; add one line per exchange
EXCHANGES: dict[str, str] = {
    "binance": "flows.sources.binance.source:from_settings",
    "bybit": "flows.sources.bybit.source:from_settings",
    "okx": "flows.sources.okx.source:from_settings",
    "binance-cm": "flows.sources.binance_cm.source:from_settings",
}


def get_source(exchange: str, settings: Settings, *, base_url: str | None = None) -> Source:
    """Build the :class:`Source` of ``exchange`` from ``settings``.

    Raises ``ValueError`` for an exchange that is not registered.

    Examples
    --------
    >>> from flows.settings import Settings
    >>> get_source("binance", Settings(), base_url="file:///tmp/mirror").exchange
    'binance'
    """
    try:
        target = EXCHANGES[exchange]
    except KeyError:
        known = ", ".join(sorted(EXCHANGES))
        raise ValueError(f"unknown exchange {exchange!r}; expected one of {known}") from None
    module_name, _, factory = target.partition(":")
    module = importlib.import_module(module_name)
    return cast("Source", getattr(module, factory)(settings, base_url=base_url))
