"""Binance USD-M futures: the public-data archive (``data.binance.vision``).

- :mod:`flows.sources.binance.paths`: the archive layout (paths, checksum lines, zip writing);
- :mod:`flows.sources.binance.client`: :class:`~flows.sources.binance.client.ArchiveClient`, the
  verified, cached HTTP/file client;
- :mod:`flows.sources.binance.parsing`: the archive CSV parsers;
- :mod:`flows.sources.binance.source`: :class:`~flows.sources.binance.source.BinanceSource`.
"""
