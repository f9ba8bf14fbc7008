-- liqheat warehouse, version 8: model outputs split by leverage band for the site's leverage
-- views (transforms/leverage_bands.py). Written by the model step next to heatmap_cells and
-- liquidation_map, keyed like them by (exchange, symbol, params_hash); summed over bands they
-- equal the unsplit tables.

CREATE TABLE IF NOT EXISTS heatmap_band_cells (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    band VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    price DOUBLE NOT NULL,
    long_usd DOUBLE NOT NULL,
    short_usd DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS liquidation_map_bands (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    band VARCHAR NOT NULL,
    as_of TIMESTAMP NOT NULL,
    price DOUBLE NOT NULL,
    long_usd DOUBLE NOT NULL,
    short_usd DOUBLE NOT NULL
);

COMMENT ON TABLE heatmap_band_cells IS 'Heatmap cells per leverage filter group (low <= 10x, medium 10-50x, high > 50x): the heatmap_cells of one model run split by the leverage of the levels; the groups sum to heatmap_cells.';
COMMENT ON COLUMN heatmap_band_cells.exchange IS 'Exchange id, e.g. binance (all = the sum over exchanges).';
COMMENT ON COLUMN heatmap_band_cells.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN heatmap_band_cells.params_hash IS 'Model parameters hash (model_runs.params_hash).';
COMMENT ON COLUMN heatmap_band_cells.band IS 'Leverage filter group: low (<= 10x), medium (over 10x up to 50x), high (over 50x).';
COMMENT ON COLUMN heatmap_band_cells.ts IS 'Time bucket start (UTC), as in heatmap_cells.';
COMMENT ON COLUMN heatmap_band_cells.price IS 'Price bucket lower edge (USDT), as in heatmap_cells.';
COMMENT ON COLUMN heatmap_band_cells.long_usd IS 'Alive long notional (USD) of this group that would liquidate in this bucket.';
COMMENT ON COLUMN heatmap_band_cells.short_usd IS 'Alive short notional (USD) of this group that would liquidate in this bucket.';

COMMENT ON TABLE liquidation_map_bands IS 'The newest liquidation map per leverage display band (<=10x, 10-25x, 25-50x, 50-100x, >100x; upper edge included): liquidation_map split by leverage; the bands sum to liquidation_map bucket by bucket.';
COMMENT ON COLUMN liquidation_map_bands.exchange IS 'Exchange id, e.g. binance (all = the sum over exchanges).';
COMMENT ON COLUMN liquidation_map_bands.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN liquidation_map_bands.params_hash IS 'Model parameters hash (model_runs.params_hash).';
COMMENT ON COLUMN liquidation_map_bands.band IS 'Leverage band label: <=10x, 10-25x, 25-50x, 50-100x or >100x.';
COMMENT ON COLUMN liquidation_map_bands.as_of IS 'Snapshot time (UTC), as in liquidation_map.';
COMMENT ON COLUMN liquidation_map_bands.price IS 'Price bucket lower edge (USDT).';
COMMENT ON COLUMN liquidation_map_bands.long_usd IS 'Alive long notional (USD) of this band liquidating in this bucket.';
COMMENT ON COLUMN liquidation_map_bands.short_usd IS 'Alive short notional (USD) of this band liquidating in this bucket.';
