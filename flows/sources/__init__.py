"""Exchange sources: one package per exchange, each yielding canonical frames per symbol-day.

``flows/sources/<exchange>/`` holds everything about one venue (client, paths, parsing,
source): :mod:`flows.sources.binance` (USD-M archive), :mod:`flows.sources.bybit`,
:mod:`flows.sources.okx`, :mod:`flows.sources.binance_cm` (COIN-M liquidation snapshots). The
shared pieces sit beside them: :mod:`flows.sources.base` (the interface every source
implements), :mod:`flows.sources.http` (REST client), :mod:`flows.sources.loader` (the single
writer), :mod:`flows.sources.registry` and :mod:`flows.sources.symbols`.
"""
