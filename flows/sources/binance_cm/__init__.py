"""Binance COIN-M liquidation snapshots, stored as realized liquidations of ``binance``.

- :mod:`flows.sources.binance_cm.parsing`: the pure CSV parser;
- :mod:`flows.sources.binance_cm.source`: :class:`~flows.sources.binance_cm.source.BinanceCmSource`.
"""
