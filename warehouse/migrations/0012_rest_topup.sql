-- liqheat warehouse, version 12: today's bars topped up from the exchanges' public REST
-- endpoints, kept apart from archive days. Every bar, mark bar and open-interest row says where
-- it came from: 'archive' (a daily archive file, the default for every loader) or 'rest' (the
-- hourly top-up of days the archive has not published yet). An archive day replaces every row of
-- its day whatever its origin (the archive wins); the top-up never writes a day that has archive
-- rows. Its ledger rows are in ingest_log under the datasets rest-klines, rest-mark_klines and
-- rest-open_interest.

ALTER TABLE klines ADD COLUMN origin VARCHAR DEFAULT 'archive';
ALTER TABLE mark_klines ADD COLUMN origin VARCHAR DEFAULT 'archive';
ALTER TABLE open_interest ADD COLUMN origin VARCHAR DEFAULT 'archive';

COMMENT ON COLUMN klines.origin IS 'Where the row came from: archive (daily archive file) or rest (today''s top-up from the exchange''s REST klines/candles; replaced by the archive day when it is loaded).';
COMMENT ON COLUMN mark_klines.origin IS 'Where the row came from: archive (daily archive file) or rest (today''s top-up from the exchange''s REST mark-price klines; replaced by the archive day when it is loaded).';
COMMENT ON COLUMN open_interest.origin IS 'Where the row came from: archive (daily archive file or the archive route''s day pull) or rest (today''s top-up from the exchange''s REST open-interest history; replaced by the archive day when it is loaded).';
COMMENT ON COLUMN ingest_log.dataset IS 'Archive dataset: klines, markPriceKlines, metrics, aggTrades or fundingRate (Binance), trades, open_interest, liquidations (OKX, Bybit), liquidationSnapshot (binance-cm); rest-klines, rest-mark_klines, rest-open_interest for the REST top-up of days not yet archived.';
