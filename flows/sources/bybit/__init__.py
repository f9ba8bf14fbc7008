"""Bybit linear perpetuals: daily trade files and the ``/v5/market`` REST API.

See :mod:`flows.sources.bybit.source`.
"""
