"""Binance COIN-M: the ``liquidationSnapshot`` archive (realized liquidations, 2023-06 to 2024-10).

See :mod:`flows.sources.binance_cm.source`.
"""
