"""Bybit linear perpetuals: daily trade files and the ``/v5/market`` REST API.

- :mod:`flows.sources.bybit.parsing`: pure parsers (gzip trade files, REST answers -> frames);
- :mod:`flows.sources.bybit.source`: :class:`~flows.sources.bybit.source.BybitSource` (fetching,
  paging, caching, staging).
"""
