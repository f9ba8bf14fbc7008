-- liqheat warehouse, version 2: documentation (COMMENT ON every table and column) and friendly
-- views for the common questions. No data changes: safe to apply to any version-1 database.
-- "Current run" everywhere below = the newest model_runs row per (exchange, symbol).

-- ---------------------------------------------------------------------------------------------
-- tables
-- ---------------------------------------------------------------------------------------------

COMMENT ON TABLE schema_version IS 'Applied schema migrations, one row per version (maintained by warehouse.db.migrate).';
COMMENT ON COLUMN schema_version.version IS 'Migration number (the NNNN of warehouse/migrations/NNNN_name.sql).';
COMMENT ON COLUMN schema_version.name IS 'Migration name (the part after the number).';
COMMENT ON COLUMN schema_version.applied_at IS 'When the migration was applied (UTC).';

COMMENT ON TABLE klines IS '1-minute trade-price bars (Binance USD-M klines archive). One row per (exchange, symbol, ts).';
COMMENT ON COLUMN klines.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN klines.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN klines.ts IS 'Bar open time (UTC).';
COMMENT ON COLUMN klines.open IS 'First trade price in the bar (USDT).';
COMMENT ON COLUMN klines.high IS 'Highest trade price in the bar (USDT).';
COMMENT ON COLUMN klines.low IS 'Lowest trade price in the bar (USDT).';
COMMENT ON COLUMN klines.close IS 'Last trade price in the bar (USDT).';
COMMENT ON COLUMN klines.volume IS 'Traded volume in base units (e.g. BTC).';
COMMENT ON COLUMN klines.quote_volume IS 'Traded volume in quote units (USDT).';
COMMENT ON COLUMN klines.trades IS 'Number of trades in the bar (the archive''s count column).';
COMMENT ON COLUMN klines.taker_buy_volume IS 'Base volume of trades where the taker bought.';
COMMENT ON COLUMN klines.taker_buy_quote_volume IS 'Quote volume (USDT) of trades where the taker bought.';

COMMENT ON TABLE mark_klines IS '1-minute mark-price bars (markPriceKlines archive); liquidations trigger on mark price.';
COMMENT ON COLUMN mark_klines.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN mark_klines.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN mark_klines.ts IS 'Bar open time (UTC).';
COMMENT ON COLUMN mark_klines.open IS 'Mark price at bar open (USDT).';
COMMENT ON COLUMN mark_klines.high IS 'Highest mark price in the bar (USDT).';
COMMENT ON COLUMN mark_klines.low IS 'Lowest mark price in the bar (USDT).';
COMMENT ON COLUMN mark_klines.close IS 'Mark price at bar close (USDT).';

COMMENT ON TABLE open_interest IS 'Open interest and positioning ratios every 5 minutes (metrics archive).';
COMMENT ON COLUMN open_interest.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN open_interest.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN open_interest.ts IS 'Sample time (UTC, the archive''s create_time).';
COMMENT ON COLUMN open_interest.oi_base IS 'Open interest in base units (sum_open_interest); null when the archive reports 0 or blank.';
COMMENT ON COLUMN open_interest.oi_usd IS 'Open interest value in USD (sum_open_interest_value); null when 0 or blank.';
COMMENT ON COLUMN open_interest.top_trader_account_ratio IS 'Top-trader long/short account ratio (count_toptrader_long_short_ratio).';
COMMENT ON COLUMN open_interest.top_trader_position_ratio IS 'Top-trader long/short position ratio (sum_toptrader_long_short_ratio).';
COMMENT ON COLUMN open_interest.global_account_ratio IS 'All-accounts long/short ratio (count_long_short_ratio).';
COMMENT ON COLUMN open_interest.taker_buy_sell_ratio IS 'Taker buy/sell volume ratio (sum_taker_long_short_vol_ratio).';

COMMENT ON TABLE funding_rates IS 'Funding rate settlements (fundingRate monthly archive).';
COMMENT ON COLUMN funding_rates.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN funding_rates.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN funding_rates.ts IS 'Funding calculation time (UTC, the archive''s calc_time).';
COMMENT ON COLUMN funding_rates.funding_interval_hours IS 'Hours between funding settlements (usually 8).';
COMMENT ON COLUMN funding_rates.funding_rate IS 'Funding rate for the interval, as a fraction (0.0001 = 0.01 %).';

COMMENT ON TABLE trade_profile IS 'Per-minute traded volume by price from aggTrades (only with --with-trades).';
COMMENT ON COLUMN trade_profile.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN trade_profile.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN trade_profile.ts IS 'Minute (UTC) the trades fall in.';
COMMENT ON COLUMN trade_profile.price IS 'Traded price (USDT).';
COMMENT ON COLUMN trade_profile.volume IS 'Base volume traded at this price in this minute.';
COMMENT ON COLUMN trade_profile.buy_volume IS 'Part of volume where the taker bought.';

COMMENT ON TABLE realized_liquidations IS 'Liquidations that actually happened (per event or per bar), used by the backtest.';
COMMENT ON COLUMN realized_liquidations.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN realized_liquidations.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN realized_liquidations.ts IS 'Event time, or bar open for per-bar data (UTC).';
COMMENT ON COLUMN realized_liquidations.side IS 'Side of the liquidated positions: long or short.';
COMMENT ON COLUMN realized_liquidations.usd IS 'Liquidated notional in USD.';
COMMENT ON COLUMN realized_liquidations.source IS 'Where the rows came from (e.g. a CSV import, OKX, the synthetic demo).';

COMMENT ON TABLE ingest_log IS 'Ingest ledger and lineage: the latest outcome per (exchange, dataset, symbol, day).';
COMMENT ON COLUMN ingest_log.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN ingest_log.dataset IS 'Archive dataset: klines, markPriceKlines, metrics, aggTrades or fundingRate.';
COMMENT ON COLUMN ingest_log.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN ingest_log.day IS 'Day the file covers (UTC); first day of the month for monthly files (fundingRate).';
COMMENT ON COLUMN ingest_log.status IS 'loaded, missing (not published in the archive) or failed (see error).';
COMMENT ON COLUMN ingest_log.rows IS 'Rows loaded from the file (null unless loaded).';
COMMENT ON COLUMN ingest_log.sha256 IS 'SHA-256 of the archive file, verified against its .CHECKSUM.';
COMMENT ON COLUMN ingest_log.error IS 'Why the day is missing or failed, or a warning for a loaded but short file.';
COMMENT ON COLUMN ingest_log.loaded_at IS 'When this outcome was recorded (UTC).';
COMMENT ON COLUMN ingest_log.source_url IS 'URL of the archive file (https:// or file://).';

COMMENT ON TABLE model_runs IS 'One row per model run: the parameters and the span it covered. The newest row per (exchange, symbol) is the current run.';
COMMENT ON COLUMN model_runs.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN model_runs.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN model_runs.params_hash IS 'Stable 12-hex digest of the model parameters; joins every model output table.';
COMMENT ON COLUMN model_runs.params_json IS 'Model parameters as canonical JSON.';
COMMENT ON COLUMN model_runs.start_ts IS 'First bar the model saw (UTC).';
COMMENT ON COLUMN model_runs.end_ts IS 'Last bar the model saw (UTC).';
COMMENT ON COLUMN model_runs.bars IS 'Number of input bars.';
COMMENT ON COLUMN model_runs.levels IS 'Number of liquidation levels created.';
COMMENT ON COLUMN model_runs.price_step IS 'Price bucket size used (USDT).';
COMMENT ON COLUMN model_runs.seconds IS 'Wall time the model took, in seconds.';
COMMENT ON COLUMN model_runs.computed_at IS 'When the run finished (UTC).';

COMMENT ON TABLE liq_levels IS 'Estimated liquidation levels: one row per (created_at, side, leverage, price bucket) of a run.';
COMMENT ON COLUMN liq_levels.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN liq_levels.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN liq_levels.params_hash IS 'Model run (see model_runs).';
COMMENT ON COLUMN liq_levels.created_at IS 'When the positions were opened (UTC).';
COMMENT ON COLUMN liq_levels.side IS 'Side of the positions: long or short.';
COMMENT ON COLUMN liq_levels.leverage IS 'Leverage tier of the positions.';
COMMENT ON COLUMN liq_levels.price IS 'Estimated liquidation price (USDT).';
COMMENT ON COLUMN liq_levels.notional_usd IS 'Notional opened at creation, in USD.';
COMMENT ON COLUMN liq_levels.liquidated_at IS 'Bar in which mark price crossed the level (UTC); null while alive.';

COMMENT ON TABLE heatmap_cells IS 'The heatmap: estimated notional still alive per time bucket x price bucket (sparse, zero cells omitted).';
COMMENT ON COLUMN heatmap_cells.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN heatmap_cells.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN heatmap_cells.params_hash IS 'Model run (see model_runs).';
COMMENT ON COLUMN heatmap_cells.ts IS 'Time bucket start (UTC).';
COMMENT ON COLUMN heatmap_cells.price IS 'Price bucket (USDT; bucket width = model_runs.price_step).';
COMMENT ON COLUMN heatmap_cells.long_usd IS 'USD of long positions that would be liquidated at this price, alive at ts.';
COMMENT ON COLUMN heatmap_cells.short_usd IS 'USD of short positions that would be liquidated at this price, alive at ts.';

COMMENT ON TABLE liquidation_map IS 'Liquidation map snapshot: per price bucket, longs below and shorts above the reference price, with cumulative curves.';
COMMENT ON COLUMN liquidation_map.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN liquidation_map.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN liquidation_map.params_hash IS 'Model run (see model_runs).';
COMMENT ON COLUMN liquidation_map.as_of IS 'Snapshot time (UTC).';
COMMENT ON COLUMN liquidation_map.ref_price IS 'Price at the snapshot (USDT).';
COMMENT ON COLUMN liquidation_map.price IS 'Price bucket (USDT).';
COMMENT ON COLUMN liquidation_map.long_usd IS 'USD of longs liquidated at this price (below ref_price).';
COMMENT ON COLUMN liquidation_map.short_usd IS 'USD of shorts liquidated at this price (above ref_price).';
COMMENT ON COLUMN liquidation_map.long_cum_usd IS 'USD of longs liquidated if price falls from ref_price to this price.';
COMMENT ON COLUMN liquidation_map.short_cum_usd IS 'USD of shorts liquidated if price rises from ref_price to this price.';

COMMENT ON TABLE key_levels IS 'The strongest liquidation clusters per side at a snapshot (rank 1 = largest).';
COMMENT ON COLUMN key_levels.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN key_levels.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN key_levels.params_hash IS 'Model run (see model_runs).';
COMMENT ON COLUMN key_levels.as_of IS 'Snapshot time (UTC).';
COMMENT ON COLUMN key_levels.side IS 'long (cluster below price) or short (cluster above price).';
COMMENT ON COLUMN key_levels.rank IS '1 = the largest cluster of this side.';
COMMENT ON COLUMN key_levels.price IS 'Cluster price (USDT).';
COMMENT ON COLUMN key_levels.usd IS 'Estimated USD liquidated at this cluster.';
COMMENT ON COLUMN key_levels.distance_pct IS 'Signed distance from the price at as_of, in % (negative = below).';

COMMENT ON TABLE predicted_liquidations IS 'Model prediction per bar: USD of estimated levels crossed in that bar.';
COMMENT ON COLUMN predicted_liquidations.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN predicted_liquidations.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN predicted_liquidations.params_hash IS 'Model run (see model_runs).';
COMMENT ON COLUMN predicted_liquidations.ts IS 'Bar open time (UTC).';
COMMENT ON COLUMN predicted_liquidations.long_usd IS 'Predicted long liquidations in the bar, USD.';
COMMENT ON COLUMN predicted_liquidations.short_usd IS 'Predicted short liquidations in the bar, USD.';

COMMENT ON TABLE backtest_scores IS 'Backtest of predicted vs realized liquidations, per method (model or baseline) and side.';
COMMENT ON COLUMN backtest_scores.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN backtest_scores.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN backtest_scores.params_hash IS 'Model run (see model_runs).';
COMMENT ON COLUMN backtest_scores.method IS 'model (the liquidation levels) or baseline (OI x adverse move).';
COMMENT ON COLUMN backtest_scores.side IS 'long or short.';
COMMENT ON COLUMN backtest_scores.capture_auc IS 'Capture AUC: 0.5 = no skill, 1.0 = all realized USD in the top-ranked bars.';
COMMENT ON COLUMN backtest_scores.top_decile_overlap IS 'Share of the top-10 % realized bars that are also top-10 % predicted.';
COMMENT ON COLUMN backtest_scores.log_corr IS 'Pearson correlation of log(1 + predicted) and log(1 + realized).';
COMMENT ON COLUMN backtest_scores.bars IS 'Number of bars scored.';
COMMENT ON COLUMN backtest_scores.realized_usd IS 'Total realized liquidations over the scored bars, USD.';
COMMENT ON COLUMN backtest_scores.start_ts IS 'First scored bar (UTC).';
COMMENT ON COLUMN backtest_scores.end_ts IS 'Last scored bar (UTC).';
COMMENT ON COLUMN backtest_scores.realized_source IS 'Source of the realized liquidations (realized_liquidations.source).';
COMMENT ON COLUMN backtest_scores.computed_at IS 'When the scores were computed (UTC).';

-- ---------------------------------------------------------------------------------------------
-- views
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE VIEW v_latest_run AS
SELECT exchange, symbol, params_hash, params_json, start_ts, end_ts, bars, levels, price_step,
       seconds, computed_at
FROM model_runs
QUALIFY row_number() OVER (
    PARTITION BY exchange, symbol ORDER BY computed_at DESC, params_hash
) = 1;

COMMENT ON VIEW v_latest_run IS 'The current model run per (exchange, symbol): the newest model_runs row.';
COMMENT ON COLUMN v_latest_run.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_latest_run.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_latest_run.params_hash IS 'Parameters of the current run; join model outputs on it.';
COMMENT ON COLUMN v_latest_run.params_json IS 'Model parameters as JSON.';
COMMENT ON COLUMN v_latest_run.start_ts IS 'First bar the run saw (UTC).';
COMMENT ON COLUMN v_latest_run.end_ts IS 'Last bar the run saw (UTC).';
COMMENT ON COLUMN v_latest_run.bars IS 'Number of input bars.';
COMMENT ON COLUMN v_latest_run.levels IS 'Number of levels created.';
COMMENT ON COLUMN v_latest_run.price_step IS 'Price bucket size (USDT).';
COMMENT ON COLUMN v_latest_run.seconds IS 'Model wall time in seconds.';
COMMENT ON COLUMN v_latest_run.computed_at IS 'When the run finished (UTC).';

CREATE OR REPLACE VIEW v_latest_price AS
SELECT exchange, symbol, max(ts) AS ts, arg_max(close, ts) AS close
FROM klines
GROUP BY exchange, symbol;

COMMENT ON VIEW v_latest_price IS 'Last known trade price per (exchange, symbol): the close of the newest 1m bar.';
COMMENT ON COLUMN v_latest_price.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_latest_price.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_latest_price.ts IS 'Open time of the newest bar (UTC).';
COMMENT ON COLUMN v_latest_price.close IS 'Close of the newest bar (USDT).';

CREATE OR REPLACE VIEW v_latest_key_levels AS
WITH current_levels AS (
    SELECT k.exchange, k.symbol, k.params_hash, k.as_of, k.side, k.rank, k.price, k.usd,
           k.distance_pct
    FROM key_levels AS k
    JOIN v_latest_run AS r USING (exchange, symbol, params_hash)
    QUALIFY k.as_of = max(k.as_of) OVER (PARTITION BY k.exchange, k.symbol)
)
SELECT c.exchange, c.symbol, c.side, c.rank, c.price, c.usd,
       100 * (c.price / p.close - 1) AS distance_pct,
       p.close AS last_price, p.ts AS last_price_ts,
       c.as_of, c.distance_pct AS distance_at_as_of_pct, c.params_hash
FROM current_levels AS c
LEFT JOIN v_latest_price AS p USING (exchange, symbol);

COMMENT ON VIEW v_latest_key_levels IS 'Strongest long/short clusters of the current run at its latest snapshot, with distance from the last price.';
COMMENT ON COLUMN v_latest_key_levels.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_latest_key_levels.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_latest_key_levels.side IS 'long (below price) or short (above price).';
COMMENT ON COLUMN v_latest_key_levels.rank IS '1 = the largest cluster of this side.';
COMMENT ON COLUMN v_latest_key_levels.price IS 'Cluster price (USDT).';
COMMENT ON COLUMN v_latest_key_levels.usd IS 'Estimated USD liquidated at this cluster.';
COMMENT ON COLUMN v_latest_key_levels.distance_pct IS 'Signed distance from last_price, in % (negative = below).';
COMMENT ON COLUMN v_latest_key_levels.last_price IS 'Last known trade price (v_latest_price.close).';
COMMENT ON COLUMN v_latest_key_levels.last_price_ts IS 'Open time of the bar last_price comes from (UTC).';
COMMENT ON COLUMN v_latest_key_levels.as_of IS 'Snapshot time of the key levels (UTC).';
COMMENT ON COLUMN v_latest_key_levels.distance_at_as_of_pct IS 'Signed distance from the price at as_of, in %.';
COMMENT ON COLUMN v_latest_key_levels.params_hash IS 'Current model run.';

CREATE OR REPLACE VIEW v_latest_liquidation_map AS
SELECT m.exchange, m.symbol, m.as_of, m.ref_price, m.price, m.long_usd, m.short_usd,
       m.long_cum_usd, m.short_cum_usd, m.params_hash
FROM liquidation_map AS m
JOIN v_latest_run AS r USING (exchange, symbol, params_hash)
QUALIFY m.as_of = max(m.as_of) OVER (PARTITION BY m.exchange, m.symbol);

COMMENT ON VIEW v_latest_liquidation_map IS 'The current run''s newest liquidation map snapshot per (exchange, symbol).';
COMMENT ON COLUMN v_latest_liquidation_map.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_latest_liquidation_map.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_latest_liquidation_map.as_of IS 'Snapshot time (UTC).';
COMMENT ON COLUMN v_latest_liquidation_map.ref_price IS 'Price at the snapshot (USDT).';
COMMENT ON COLUMN v_latest_liquidation_map.price IS 'Price bucket (USDT).';
COMMENT ON COLUMN v_latest_liquidation_map.long_usd IS 'USD of longs liquidated at this price.';
COMMENT ON COLUMN v_latest_liquidation_map.short_usd IS 'USD of shorts liquidated at this price.';
COMMENT ON COLUMN v_latest_liquidation_map.long_cum_usd IS 'USD of longs liquidated if price falls to this price.';
COMMENT ON COLUMN v_latest_liquidation_map.short_cum_usd IS 'USD of shorts liquidated if price rises to this price.';
COMMENT ON COLUMN v_latest_liquidation_map.params_hash IS 'Current model run.';

CREATE OR REPLACE VIEW v_heatmap_daily AS
WITH cells AS (
    SELECT h.exchange, h.symbol, CAST(h.ts AS DATE) AS day, h.ts, h.price, h.long_usd,
           h.short_usd
    FROM heatmap_cells AS h
    JOIN v_latest_run AS r USING (exchange, symbol, params_hash)
),
peaks AS (
    SELECT exchange, symbol, day, count(*) AS cells,
           arg_max(price, long_usd) AS peak_long_price, max(long_usd) AS peak_long_usd,
           arg_max(price, short_usd) AS peak_short_price, max(short_usd) AS peak_short_usd
    FROM cells
    GROUP BY exchange, symbol, day
),
alive AS (
    SELECT exchange, symbol, day, max(long_usd) AS max_alive_long_usd,
           max(short_usd) AS max_alive_short_usd
    FROM (
        SELECT exchange, symbol, day, ts, sum(long_usd) AS long_usd, sum(short_usd) AS short_usd
        FROM cells
        GROUP BY exchange, symbol, day, ts
    )
    GROUP BY exchange, symbol, day
),
predicted AS (
    SELECT p.exchange, p.symbol, CAST(p.ts AS DATE) AS day, sum(p.long_usd) AS predicted_long_usd,
           sum(p.short_usd) AS predicted_short_usd
    FROM predicted_liquidations AS p
    JOIN v_latest_run AS r USING (exchange, symbol, params_hash)
    GROUP BY p.exchange, p.symbol, CAST(p.ts AS DATE)
),
realized AS (
    SELECT exchange, symbol, CAST(ts AS DATE) AS day,
           sum(usd) FILTER (WHERE side = 'long') AS realized_long_usd,
           sum(usd) FILTER (WHERE side = 'short') AS realized_short_usd
    FROM realized_liquidations
    GROUP BY exchange, symbol, CAST(ts AS DATE)
),
prices AS (
    SELECT exchange, symbol, CAST(ts AS DATE) AS day, min(low) AS price_low,
           max(high) AS price_high, arg_max(close, ts) AS price_close
    FROM klines
    GROUP BY exchange, symbol, CAST(ts AS DATE)
)
SELECT exchange, symbol, day, price_low, price_high, price_close,
       peak_long_price, peak_long_usd, peak_short_price, peak_short_usd,
       max_alive_long_usd, max_alive_short_usd,
       predicted_long_usd, predicted_short_usd, realized_long_usd, realized_short_usd, cells
FROM peaks
JOIN alive USING (exchange, symbol, day)
LEFT JOIN predicted USING (exchange, symbol, day)
LEFT JOIN realized USING (exchange, symbol, day)
LEFT JOIN prices USING (exchange, symbol, day);

COMMENT ON VIEW v_heatmap_daily IS 'Per (exchange, symbol, day) of the current run: price range, peak heatmap buckets, alive, predicted and realized totals.';
COMMENT ON COLUMN v_heatmap_daily.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_heatmap_daily.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_heatmap_daily.day IS 'UTC day.';
COMMENT ON COLUMN v_heatmap_daily.price_low IS 'Lowest trade price of the day (USDT).';
COMMENT ON COLUMN v_heatmap_daily.price_high IS 'Highest trade price of the day (USDT).';
COMMENT ON COLUMN v_heatmap_daily.price_close IS 'Last close of the day (USDT).';
COMMENT ON COLUMN v_heatmap_daily.peak_long_price IS 'Price bucket of the day''s brightest long cell.';
COMMENT ON COLUMN v_heatmap_daily.peak_long_usd IS 'USD of the day''s brightest long cell.';
COMMENT ON COLUMN v_heatmap_daily.peak_short_price IS 'Price bucket of the day''s brightest short cell.';
COMMENT ON COLUMN v_heatmap_daily.peak_short_usd IS 'USD of the day''s brightest short cell.';
COMMENT ON COLUMN v_heatmap_daily.max_alive_long_usd IS 'Largest total of alive long notional at one time bucket of the day.';
COMMENT ON COLUMN v_heatmap_daily.max_alive_short_usd IS 'Largest total of alive short notional at one time bucket of the day.';
COMMENT ON COLUMN v_heatmap_daily.predicted_long_usd IS 'Sum of predicted long liquidations over the day.';
COMMENT ON COLUMN v_heatmap_daily.predicted_short_usd IS 'Sum of predicted short liquidations over the day.';
COMMENT ON COLUMN v_heatmap_daily.realized_long_usd IS 'Sum of realized long liquidations over the day (all sources); null if none recorded.';
COMMENT ON COLUMN v_heatmap_daily.realized_short_usd IS 'Sum of realized short liquidations over the day (all sources); null if none recorded.';
COMMENT ON COLUMN v_heatmap_daily.cells IS 'Number of non-zero heatmap cells that day.';

CREATE OR REPLACE VIEW v_ingest_gaps AS
WITH spans AS (
    SELECT exchange, dataset, symbol, min(day) AS first_day, max(day) AS last_day
    FROM ingest_log
    GROUP BY exchange, dataset, symbol
),
expected AS (
    SELECT s.exchange, s.dataset, s.symbol, CAST(d.day AS DATE) AS day
    FROM spans AS s,
         LATERAL (
             SELECT unnest(generate_series(
                 s.first_day, s.last_day,
                 CASE WHEN s.dataset = 'fundingRate' THEN INTERVAL 1 MONTH ELSE INTERVAL 1 DAY END
             )) AS day
         ) AS d
)
SELECT e.exchange, e.dataset, e.symbol, e.day, coalesce(l.status, 'absent') AS status,
       CASE
           WHEN l.status IS NULL THEN 'no ingest attempt recorded for this day'
           WHEN l.error IS NOT NULL THEN l.error
           WHEN l.status = 'missing' THEN 'file not published in the archive'
           ELSE 'failed (no reason recorded)'
       END AS reason,
       l.loaded_at AS attempted_at, l.source_url
FROM expected AS e
LEFT JOIN ingest_log AS l USING (exchange, dataset, symbol, day)
WHERE l.status IS NULL OR l.status <> 'loaded' OR l.error IS NOT NULL;

COMMENT ON VIEW v_ingest_gaps IS 'Dataset-days that are missing, failed, loaded with a warning, or never attempted inside each dataset''s ingested span.';
COMMENT ON COLUMN v_ingest_gaps.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_ingest_gaps.dataset IS 'Archive dataset (klines, markPriceKlines, metrics, aggTrades, fundingRate).';
COMMENT ON COLUMN v_ingest_gaps.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_ingest_gaps.day IS 'UTC day (first of the month for fundingRate).';
COMMENT ON COLUMN v_ingest_gaps.status IS 'missing, failed, loaded (with a warning) or absent (never attempted).';
COMMENT ON COLUMN v_ingest_gaps.reason IS 'Why: the recorded error, or a default explanation.';
COMMENT ON COLUMN v_ingest_gaps.attempted_at IS 'When the outcome was recorded (UTC); null if absent.';
COMMENT ON COLUMN v_ingest_gaps.source_url IS 'Archive file URL of the attempt.';

CREATE OR REPLACE VIEW v_coverage AS
SELECT exchange, dataset, symbol, min(day) AS first_day, max(day) AS last_day,
       count(*) FILTER (WHERE status = 'loaded') AS loaded_days,
       count(*) FILTER (WHERE status = 'missing') AS missing_days,
       count(*) FILTER (WHERE status = 'failed') AS failed_days,
       CAST(coalesce(sum(rows) FILTER (WHERE status = 'loaded'), 0) AS BIGINT) AS rows_loaded,
       max(loaded_at) AS last_attempt_at
FROM ingest_log
GROUP BY exchange, dataset, symbol;

COMMENT ON VIEW v_coverage IS 'Ingest coverage per (exchange, dataset, symbol): span, loaded/missing/failed days, rows.';
COMMENT ON COLUMN v_coverage.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_coverage.dataset IS 'Archive dataset.';
COMMENT ON COLUMN v_coverage.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_coverage.first_day IS 'First day in the ledger.';
COMMENT ON COLUMN v_coverage.last_day IS 'Last day in the ledger.';
COMMENT ON COLUMN v_coverage.loaded_days IS 'Days loaded (months for fundingRate).';
COMMENT ON COLUMN v_coverage.missing_days IS 'Days not published in the archive.';
COMMENT ON COLUMN v_coverage.failed_days IS 'Days that failed (see v_ingest_gaps for why).';
COMMENT ON COLUMN v_coverage.rows_loaded IS 'Rows loaded over all loaded days.';
COMMENT ON COLUMN v_coverage.last_attempt_at IS 'Most recent ingest outcome (UTC).';

CREATE OR REPLACE VIEW v_backtest AS
WITH scores AS (
    SELECT b.*
    FROM backtest_scores AS b
    JOIN v_latest_run AS r USING (exchange, symbol, params_hash)
    QUALIFY row_number() OVER (
        PARTITION BY b.exchange, b.symbol, b.method, b.side ORDER BY b.computed_at DESC
    ) = 1
)
SELECT m.exchange, m.symbol, m.side,
       m.capture_auc AS model_capture_auc, b.capture_auc AS baseline_capture_auc,
       m.capture_auc - b.capture_auc AS capture_auc_lift,
       m.capture_auc > b.capture_auc AS beats_baseline,
       m.top_decile_overlap AS model_top_decile_overlap,
       b.top_decile_overlap AS baseline_top_decile_overlap,
       m.log_corr AS model_log_corr, b.log_corr AS baseline_log_corr,
       m.bars, m.realized_usd, m.start_ts, m.end_ts, m.realized_source, m.params_hash,
       m.computed_at
FROM scores AS m
LEFT JOIN scores AS b
       ON b.exchange = m.exchange AND b.symbol = m.symbol AND b.side = m.side
      AND b.method = 'baseline'
WHERE m.method = 'model';

COMMENT ON VIEW v_backtest IS 'Model vs baseline backtest scores of the current run, one row per (exchange, symbol, side).';
COMMENT ON COLUMN v_backtest.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_backtest.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_backtest.side IS 'long or short.';
COMMENT ON COLUMN v_backtest.model_capture_auc IS 'Capture AUC of the model (0.5 = no skill).';
COMMENT ON COLUMN v_backtest.baseline_capture_auc IS 'Capture AUC of the OI x adverse-move baseline.';
COMMENT ON COLUMN v_backtest.capture_auc_lift IS 'model_capture_auc - baseline_capture_auc.';
COMMENT ON COLUMN v_backtest.beats_baseline IS 'True when the model''s capture AUC is above the baseline''s.';
COMMENT ON COLUMN v_backtest.model_top_decile_overlap IS 'Top-decile overlap of the model.';
COMMENT ON COLUMN v_backtest.baseline_top_decile_overlap IS 'Top-decile overlap of the baseline.';
COMMENT ON COLUMN v_backtest.model_log_corr IS 'Log correlation of the model.';
COMMENT ON COLUMN v_backtest.baseline_log_corr IS 'Log correlation of the baseline.';
COMMENT ON COLUMN v_backtest.bars IS 'Number of bars scored.';
COMMENT ON COLUMN v_backtest.realized_usd IS 'Total realized liquidations over the scored bars, USD.';
COMMENT ON COLUMN v_backtest.start_ts IS 'First scored bar (UTC).';
COMMENT ON COLUMN v_backtest.end_ts IS 'Last scored bar (UTC).';
COMMENT ON COLUMN v_backtest.realized_source IS 'Source of the realized liquidations.';
COMMENT ON COLUMN v_backtest.params_hash IS 'Current model run.';
COMMENT ON COLUMN v_backtest.computed_at IS 'When the model scores were computed (UTC).';
