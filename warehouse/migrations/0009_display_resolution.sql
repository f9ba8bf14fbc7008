-- Model outputs at display resolution (issue 15): the stored heatmap's time buckets coarsen
-- with age and cover only the prices the site can show; raw levels are stored on request.
COMMENT ON TABLE heatmap_cells IS 'The heatmap at display resolution: estimated notional still alive per time bucket x price bucket (sparse, zero cells omitted). Buckets are 15 minutes (5 on a history of 3 days or less) over the last 4 days before the UTC midnight after the run''s last bar, then 1 hour to 8 days, 4 hours to 31 days, 12 hours to 91 days, 1 day beyond; only prices within the traded range padded by max(30 % of the range, 5 % of the price) and the key levels +- 2 %.';
COMMENT ON COLUMN heatmap_cells.ts IS 'Time bucket start (UTC); the bucket''s length depends on its age (see the table comment).';
COMMENT ON COLUMN heatmap_cells.long_usd IS 'USD of long positions that would be liquidated at this price, alive in the bucket (mean over its bars).';
COMMENT ON COLUMN heatmap_cells.short_usd IS 'USD of short positions that would be liquidated at this price, alive in the bucket (mean over its bars).';
COMMENT ON TABLE liq_levels IS 'Estimated liquidation levels: one row per (created_at, side, leverage, price bucket) of a run. Stored only with LIQHEAT_STORE_LEVELS=1 (about 65k rows per symbol-day of 1-minute bars); reproducible from the bars and model_runs.params_json.';
