"""Exchange sources: one package per exchange, each yielding canonical frames per symbol-day.

``flows/sources/<exchange>/`` holds everything about one venue, in the same shape for each:
``parsing.py`` (pure: bytes/rows -> polars frames) and ``source.py`` (I/O), plus Binance's
``paths.py`` and ``client.py``: :mod:`flows.sources.binance` (USD-M archive),
:mod:`flows.sources.bybit`, :mod:`flows.sources.okx`, :mod:`flows.sources.binance_cm` (COIN-M
liquidation snapshots). The
shared pieces sit beside them: :mod:`flows.sources.base` (the interface every source
implements), :mod:`flows.sources.errors` (the one error family), :mod:`flows.sources.http`
(REST client), :mod:`flows.sources.files` (the file kit: atomic writes, sha256, zip members,
staged Parquet), :mod:`flows.sources.loader` (the single writer),
:mod:`flows.sources.registry` and :mod:`flows.sources.symbols`.
"""
