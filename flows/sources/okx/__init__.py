"""OKX USDT swaps: daily trade files, open-interest history and liquidation orders.

See :mod:`flows.sources.okx.source`.
"""
