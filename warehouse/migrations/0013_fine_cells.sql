-- liqheat warehouse, version 13: fine heatmap cells for the short pages (issue 20). The model
-- step stores the last 26 hours before the end of the data again at a finer price step (the
-- run's price step / 5), only inside the prices a 12h or 24h page can show, so those pages grid
-- at tens of dollars on BTC instead of the run's step. Keyed and replaced like heatmap_cells
-- and heatmap_band_cells (one current run per exchange and symbol); summed over price they
-- equal heatmap_cells inside the same window. The exchange sum (exchange 'all') has none: its
-- pages use heatmap_cells.

CREATE TABLE IF NOT EXISTS heatmap_fine_cells (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    price DOUBLE NOT NULL,
    long_usd DOUBLE NOT NULL,
    short_usd DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS heatmap_fine_band_cells (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    band VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    price DOUBLE NOT NULL,
    long_usd DOUBLE NOT NULL,
    short_usd DOUBLE NOT NULL
);

COMMENT ON TABLE heatmap_fine_cells IS 'The heatmap of the last 26 hours before a run''s last bar at a fine price step (the run''s price_step / 5), inside the last 26 hours'' traded range padded by the larger of twice the range and 6 average hourly ranges; time buckets as in heatmap_cells. Read by the 12h and 24h pages; none for the exchange sum (all).';
COMMENT ON COLUMN heatmap_fine_cells.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN heatmap_fine_cells.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN heatmap_fine_cells.params_hash IS 'Model parameters hash (model_runs.params_hash).';
COMMENT ON COLUMN heatmap_fine_cells.ts IS 'Time bucket start (UTC), as in heatmap_cells.';
COMMENT ON COLUMN heatmap_fine_cells.price IS 'Price bucket lower edge (USDT), at model_runs.price_step / 5.';
COMMENT ON COLUMN heatmap_fine_cells.long_usd IS 'USD of long positions that would be liquidated at this price, alive in the bucket (mean over its bars).';
COMMENT ON COLUMN heatmap_fine_cells.short_usd IS 'USD of short positions that would be liquidated at this price, alive in the bucket (mean over its bars).';

COMMENT ON TABLE heatmap_fine_band_cells IS 'heatmap_fine_cells per leverage filter group (low <= 10x, medium 10-50x, high > 50x); the groups sum to heatmap_fine_cells.';
COMMENT ON COLUMN heatmap_fine_band_cells.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN heatmap_fine_band_cells.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN heatmap_fine_band_cells.params_hash IS 'Model parameters hash (model_runs.params_hash).';
COMMENT ON COLUMN heatmap_fine_band_cells.band IS 'Leverage filter group: low (<= 10x), medium (over 10x up to 50x), high (over 50x).';
COMMENT ON COLUMN heatmap_fine_band_cells.ts IS 'Time bucket start (UTC), as in heatmap_cells.';
COMMENT ON COLUMN heatmap_fine_band_cells.price IS 'Price bucket lower edge (USDT), as in heatmap_fine_cells.';
COMMENT ON COLUMN heatmap_fine_band_cells.long_usd IS 'Alive long notional (USD) of this group that would liquidate in this bucket.';
COMMENT ON COLUMN heatmap_fine_band_cells.short_usd IS 'Alive short notional (USD) of this group that would liquidate in this bucket.';
