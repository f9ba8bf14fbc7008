"""Today's bars from the exchanges' public REST endpoints (the top-up before the archive).

- :mod:`flows.sources.today.parsing`: pure parsers of the REST answers (Binance USD-M klines,
  mark-price klines and ``openInterestHist``; Bybit ``kline``/``mark-price-kline``; OKX
  ``candles``/``mark-price-candles``) into canonical frames;
- :mod:`flows.sources.today.source`: the paging fetchers, one per venue (open interest of Bybit
  and OKX through their archive sources' REST code).

What is stored, how the archive replaces it and the lineage: :mod:`flows.today`.
"""
