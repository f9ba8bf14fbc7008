"""OKX USDT swaps: daily trade files, open-interest history and liquidation orders.

- :mod:`flows.sources.okx.paths`: trade-file paths and OKX's UTC+8 file days;
- :mod:`flows.sources.okx.parsing`: pure parsers (trade CSVs, REST answers -> frames);
- :mod:`flows.sources.okx.source`: :class:`~flows.sources.okx.source.OkxSource` (fetching,
  paging, caching, staging).
"""
