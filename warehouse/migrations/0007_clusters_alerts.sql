-- liqheat warehouse, version 7: key levels become liquidation clusters (transforms/clusters.py),
-- alerts are raised after each pipeline run, and long vs short level size over time.

ALTER TABLE key_levels ADD COLUMN price_low DOUBLE;
ALTER TABLE key_levels ADD COLUMN price_high DOUBLE;
ALTER TABLE key_levels ADD COLUMN is_nearest BOOLEAN;
ALTER TABLE key_levels ADD COLUMN is_largest BOOLEAN;

COMMENT ON TABLE key_levels IS 'Key levels: liquidation clusters per side at a snapshot (peaks of the liquidation map smoothed over 0.25 % of the price, merged when within 0.5 %; see transforms/clusters.py): the 5 largest per side, plus the nearest significant one when it is not among them.';
COMMENT ON COLUMN key_levels.rank IS '1 = the largest cluster of this side by USD; above 5 only for the nearest significant cluster outside the 5 largest.';
COMMENT ON COLUMN key_levels.price IS 'Cluster price (USDT): USD-weighted centre of its peak, rounded to the price step.';
COMMENT ON COLUMN key_levels.usd IS 'Estimated USD liquidated in the cluster (its whole range price_low .. price_high).';
COMMENT ON COLUMN key_levels.price_low IS 'Lower edge of the cluster''s lowest price bucket with USD (USDT); NULL in rows written before schema version 7.';
COMMENT ON COLUMN key_levels.price_high IS 'Upper edge of the cluster''s highest price bucket with USD (USDT); NULL before schema version 7.';
COMMENT ON COLUMN key_levels.is_nearest IS 'True for the nearest significant cluster of this side (USD >= 5 % of the side''s total, or the largest); NULL before schema version 7.';
COMMENT ON COLUMN key_levels.is_largest IS 'True for the largest cluster of this side (rank 1); NULL before schema version 7.';

CREATE OR REPLACE VIEW v_latest_key_levels AS
WITH current_levels AS (
    SELECT k.exchange, k.symbol, k.params_hash, k.as_of, k.side, k.rank, k.price, k.usd,
           k.distance_pct, k.price_low, k.price_high, k.is_nearest, k.is_largest
    FROM key_levels AS k
    JOIN v_latest_run AS r USING (exchange, symbol, params_hash)
    QUALIFY k.as_of = max(k.as_of) OVER (PARTITION BY k.exchange, k.symbol)
)
SELECT c.exchange, c.symbol, c.side, c.rank, c.price, c.usd,
       100 * (c.price / p.close - 1) AS distance_pct,
       p.close AS last_price, p.ts AS last_price_ts,
       c.as_of, c.distance_pct AS distance_at_as_of_pct, c.params_hash,
       c.price_low, c.price_high, c.is_nearest, c.is_largest
FROM current_levels AS c
LEFT JOIN v_latest_price AS p USING (exchange, symbol);

COMMENT ON VIEW v_latest_key_levels IS 'Strongest long/short clusters of the current run (the 5 largest per side plus the nearest significant one) at its latest snapshot, with distance from the last price.';
COMMENT ON COLUMN v_latest_key_levels.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_latest_key_levels.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_latest_key_levels.side IS 'long (below price) or short (above price).';
COMMENT ON COLUMN v_latest_key_levels.rank IS '1 = the largest cluster of this side.';
COMMENT ON COLUMN v_latest_key_levels.price IS 'Cluster price (USDT), rounded to the price step.';
COMMENT ON COLUMN v_latest_key_levels.usd IS 'Estimated USD liquidated in the cluster.';
COMMENT ON COLUMN v_latest_key_levels.distance_pct IS 'Signed distance from last_price, in % (negative = below).';
COMMENT ON COLUMN v_latest_key_levels.last_price IS 'Last known trade price (v_latest_price.close).';
COMMENT ON COLUMN v_latest_key_levels.last_price_ts IS 'Open time of the bar last_price comes from (UTC).';
COMMENT ON COLUMN v_latest_key_levels.as_of IS 'Snapshot time of the key levels (UTC).';
COMMENT ON COLUMN v_latest_key_levels.distance_at_as_of_pct IS 'Signed distance from the price at as_of, in %.';
COMMENT ON COLUMN v_latest_key_levels.params_hash IS 'Current model run.';
COMMENT ON COLUMN v_latest_key_levels.price_low IS 'Low end of the cluster''s price range (USDT).';
COMMENT ON COLUMN v_latest_key_levels.price_high IS 'High end of the cluster''s price range (USDT).';
COMMENT ON COLUMN v_latest_key_levels.is_nearest IS 'The nearest significant cluster of this side.';
COMMENT ON COLUMN v_latest_key_levels.is_largest IS 'The largest cluster of this side.';

CREATE TABLE IF NOT EXISTS alerts (
    run_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    ts TIMESTAMP NOT NULL,
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    side VARCHAR NOT NULL CHECK (side IN ('long', 'short')),
    price DOUBLE NOT NULL,
    price_low DOUBLE NOT NULL,
    price_high DOUBLE NOT NULL,
    usd DOUBLE NOT NULL,
    distance_pct DOUBLE NOT NULL,
    ref_price DOUBLE NOT NULL,
    message VARCHAR NOT NULL
);

COMMENT ON TABLE alerts IS 'Liquidation clusters near the price, raised after each pipeline run: within LIQHEAT_ALERT_DISTANCE_PCT of the price and at least LIQHEAT_ALERT_MIN_USD and LIQHEAT_ALERT_MIN_SHARE of their side. One row per (run_id, exchange, symbol, side, price).';
COMMENT ON COLUMN alerts.run_id IS 'Pipeline run that raised the alert (runs.run_id).';
COMMENT ON COLUMN alerts.created_at IS 'When the alert was raised (UTC).';
COMMENT ON COLUMN alerts.ts IS 'Snapshot time of the clusters (the liquidation map''s as_of, UTC).';
COMMENT ON COLUMN alerts.exchange IS 'Exchange id (all = every exchange summed).';
COMMENT ON COLUMN alerts.symbol IS 'Contract symbol.';
COMMENT ON COLUMN alerts.params_hash IS 'Model run the clusters come from (see model_runs).';
COMMENT ON COLUMN alerts.side IS 'long (cluster below price) or short (above).';
COMMENT ON COLUMN alerts.price IS 'Cluster price (USDT), rounded to the price step.';
COMMENT ON COLUMN alerts.price_low IS 'Low end of the cluster''s price range (USDT).';
COMMENT ON COLUMN alerts.price_high IS 'High end of the cluster''s price range (USDT).';
COMMENT ON COLUMN alerts.usd IS 'Estimated USD liquidated in the cluster.';
COMMENT ON COLUMN alerts.distance_pct IS 'Signed distance of price from ref_price, in % (negative = below).';
COMMENT ON COLUMN alerts.ref_price IS 'Price at ts (the liquidation map''s ref_price, USDT).';
COMMENT ON COLUMN alerts.message IS 'One line of text, as sent to LIQHEAT_ALERT_WEBHOOK.';

CREATE OR REPLACE VIEW v_latest_alerts AS
SELECT a.exchange, a.symbol, a.side, a.price, a.price_low, a.price_high, a.usd, a.distance_pct,
       a.ref_price, a.ts, a.message, a.run_id, a.created_at, a.params_hash
FROM alerts AS a
JOIN v_latest_run AS r USING (exchange, symbol, params_hash)
WHERE a.created_at >= r.computed_at
QUALIFY a.created_at = max(a.created_at) OVER (PARTITION BY a.exchange, a.symbol);

COMMENT ON VIEW v_latest_alerts IS 'Alerts on the current model run: per (exchange, symbol) the rows of the newest run that raised any after the model run was computed (none when the model ran again since).';
COMMENT ON COLUMN v_latest_alerts.exchange IS 'Exchange id (all = every exchange summed).';
COMMENT ON COLUMN v_latest_alerts.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_latest_alerts.side IS 'long (below price) or short (above).';
COMMENT ON COLUMN v_latest_alerts.price IS 'Cluster price (USDT).';
COMMENT ON COLUMN v_latest_alerts.price_low IS 'Low end of the cluster''s price range (USDT).';
COMMENT ON COLUMN v_latest_alerts.price_high IS 'High end of the cluster''s price range (USDT).';
COMMENT ON COLUMN v_latest_alerts.usd IS 'Estimated USD liquidated in the cluster.';
COMMENT ON COLUMN v_latest_alerts.distance_pct IS 'Signed distance from ref_price, in %.';
COMMENT ON COLUMN v_latest_alerts.ref_price IS 'Price at ts (USDT).';
COMMENT ON COLUMN v_latest_alerts.ts IS 'Snapshot time of the clusters (UTC).';
COMMENT ON COLUMN v_latest_alerts.message IS 'One line of text, as sent to the webhook.';
COMMENT ON COLUMN v_latest_alerts.run_id IS 'Pipeline run that raised the alert.';
COMMENT ON COLUMN v_latest_alerts.created_at IS 'When the alert was raised (UTC).';
COMMENT ON COLUMN v_latest_alerts.params_hash IS 'Current model run.';

CREATE OR REPLACE VIEW v_long_short AS
WITH per_bucket AS (
    SELECT h.exchange, h.symbol, h.params_hash, h.ts,
           sum(h.long_usd) AS long_usd, sum(h.short_usd) AS short_usd
    FROM heatmap_cells AS h
    JOIN v_latest_run AS r USING (exchange, symbol, params_hash)
    GROUP BY ALL
)
SELECT exchange, symbol, time_bucket(INTERVAL 1 HOUR, ts) AS ts,
       avg(long_usd) AS long_usd, avg(short_usd) AS short_usd,
       avg(long_usd) - avg(short_usd) AS delta_usd,
       count(*) AS buckets, any_value(params_hash) AS params_hash
FROM per_bucket
GROUP BY exchange, symbol, time_bucket(INTERVAL 1 HOUR, ts);

COMMENT ON VIEW v_long_short IS 'Long vs short liquidation level size per hour of the current run: total alive long and short level USD (heatmap cells summed over price), averaged over the heatmap time buckets of the hour.';
COMMENT ON COLUMN v_long_short.exchange IS 'Exchange id (all = every exchange summed).';
COMMENT ON COLUMN v_long_short.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_long_short.ts IS 'Start of the hour (UTC).';
COMMENT ON COLUMN v_long_short.long_usd IS 'Alive long liquidation levels, USD (mean over the hour).';
COMMENT ON COLUMN v_long_short.short_usd IS 'Alive short liquidation levels, USD (mean over the hour).';
COMMENT ON COLUMN v_long_short.delta_usd IS 'long_usd - short_usd (positive = more longs at risk).';
COMMENT ON COLUMN v_long_short.buckets IS 'Heatmap time buckets with cells in the hour (4 with 15m buckets).';
COMMENT ON COLUMN v_long_short.params_hash IS 'Current model run.';
