-- liqheat warehouse, version 11: bar sizes are stored (liqheat import loads bars of 1 minute to
-- 1 day), short archive days are recorded as such, and alerts are raised once per cluster while
-- they stay true.

ALTER TABLE klines ADD COLUMN bar_seconds INTEGER DEFAULT 60;
COMMENT ON TABLE klines IS 'Trade-price bars: 1-minute bars from the exchanges'' archives, or bars of the size bar_seconds says from `liqheat import`. One row per (exchange, symbol, ts).';
COMMENT ON COLUMN klines.bar_seconds IS 'Bar size in seconds (60 for the archives; detected from the times by `liqheat import`). One size per (exchange, symbol).';

ALTER TABLE ingest_log ADD COLUMN bar_seconds INTEGER;
ALTER TABLE ingest_log ADD COLUMN complete BOOLEAN;
UPDATE ingest_log SET complete = CASE WHEN status = 'loaded' THEN coalesce(error NOT LIKE '%short file:%', true) END;
COMMENT ON COLUMN ingest_log.dataset IS 'Archive dataset: klines, markPriceKlines, metrics, aggTrades or fundingRate; import for a day of `liqheat import` (rows = its bars).';
COMMENT ON COLUMN ingest_log.sha256 IS 'SHA-256 of the archive file (verified against its .CHECKSUM) or of the imported file.';
COMMENT ON COLUMN ingest_log.source_url IS 'URL of the archive file (https:// or file://), or the imported file''s absolute path.';
COMMENT ON COLUMN ingest_log.bar_seconds IS 'Bar size of an imported day, in seconds (null for archive datasets: 1-minute klines, 5-minute metrics).';
COMMENT ON COLUMN ingest_log.complete IS 'True when the loaded day has every row it should (a short archive file or a partly covered import day is false; see error). Null for missing/failed days.';

CREATE OR REPLACE VIEW v_latest_price AS
SELECT exchange, symbol, max(ts) AS ts, arg_max(close, ts) AS close,
       arg_max(bar_seconds, ts) AS bar_seconds
FROM klines
GROUP BY exchange, symbol;

COMMENT ON VIEW v_latest_price IS 'Last known trade price per (exchange, symbol): the close of the newest bar, with its size.';
COMMENT ON COLUMN v_latest_price.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_latest_price.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_latest_price.ts IS 'Open time of the newest bar (UTC).';
COMMENT ON COLUMN v_latest_price.close IS 'Close of the newest bar (USDT).';
COMMENT ON COLUMN v_latest_price.bar_seconds IS 'Size of the newest bar in seconds (60 = 1 minute).';

CREATE OR REPLACE VIEW v_coverage AS
SELECT exchange, dataset, symbol, min(day) AS first_day, max(day) AS last_day,
       count(*) FILTER (WHERE status = 'loaded') AS loaded_days,
       count(*) FILTER (WHERE status = 'missing') AS missing_days,
       count(*) FILTER (WHERE status = 'failed') AS failed_days,
       CAST(coalesce(sum(rows) FILTER (WHERE status = 'loaded'), 0) AS BIGINT) AS rows_loaded,
       max(loaded_at) AS last_attempt_at,
       count(*) FILTER (WHERE status = 'loaded' AND NOT complete) AS short_days,
       max(bar_seconds) AS bar_seconds
FROM ingest_log
GROUP BY exchange, dataset, symbol;

COMMENT ON VIEW v_coverage IS 'Ingest coverage per (exchange, dataset, symbol): span, loaded/missing/failed/short days, rows.';
COMMENT ON COLUMN v_coverage.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_coverage.dataset IS 'Archive dataset (import: `liqheat import`).';
COMMENT ON COLUMN v_coverage.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_coverage.first_day IS 'First day in the ledger.';
COMMENT ON COLUMN v_coverage.last_day IS 'Last day in the ledger.';
COMMENT ON COLUMN v_coverage.loaded_days IS 'Days loaded (months for fundingRate).';
COMMENT ON COLUMN v_coverage.missing_days IS 'Days not published in the archive.';
COMMENT ON COLUMN v_coverage.failed_days IS 'Days that failed (see v_ingest_gaps for why).';
COMMENT ON COLUMN v_coverage.rows_loaded IS 'Rows loaded over all loaded days.';
COMMENT ON COLUMN v_coverage.last_attempt_at IS 'Most recent ingest outcome (UTC).';
COMMENT ON COLUMN v_coverage.short_days IS 'Loaded days with fewer rows than a full day (ingest_log.complete false).';
COMMENT ON COLUMN v_coverage.bar_seconds IS 'Bar size of imported days in seconds (null for archive datasets).';

ALTER TABLE alerts ADD COLUMN last_seen_at TIMESTAMP;
ALTER TABLE alerts ADD COLUMN cleared_at TIMESTAMP;
UPDATE alerts SET last_seen_at = created_at;
COMMENT ON TABLE alerts IS 'Liquidation clusters near the price: within LIQHEAT_ALERT_DISTANCE_PCT of the price and at least LIQHEAT_ALERT_MIN_USD and LIQHEAT_ALERT_MIN_SHARE of their side. One row per alert, raised once per (exchange, symbol, side, cluster) while it stays true: a later run that finds the same cluster (same side, overlapping price range) updates last_seen_at, one that no longer finds it sets cleared_at; only new rows are sent to the webhook.';
COMMENT ON COLUMN alerts.run_id IS 'Pipeline run that first raised the alert (runs.run_id).';
COMMENT ON COLUMN alerts.created_at IS 'When the alert was first raised (UTC).';
COMMENT ON COLUMN alerts.last_seen_at IS 'Last run that still found the cluster near the price (UTC).';
COMMENT ON COLUMN alerts.cleared_at IS 'First run that no longer found it (UTC); null while the alert stays true.';

CREATE OR REPLACE VIEW v_latest_alerts AS
SELECT a.exchange, a.symbol, a.side, a.price, a.price_low, a.price_high, a.usd, a.distance_pct,
       a.ref_price, a.ts, a.message, a.run_id, a.created_at, a.params_hash, a.last_seen_at
FROM alerts AS a
JOIN v_latest_run AS r USING (exchange, symbol, params_hash)
WHERE a.cleared_at IS NULL AND coalesce(a.last_seen_at, a.created_at) >= r.computed_at;

COMMENT ON VIEW v_latest_alerts IS 'Alerts that are true on the current model run: not cleared, and confirmed by an alert check after the model run was computed (none when the model ran again since).';
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
COMMENT ON COLUMN v_latest_alerts.run_id IS 'Pipeline run that first raised the alert.';
COMMENT ON COLUMN v_latest_alerts.created_at IS 'When the alert was first raised (UTC).';
COMMENT ON COLUMN v_latest_alerts.params_hash IS 'Current model run.';
COMMENT ON COLUMN v_latest_alerts.last_seen_at IS 'Last alert check that still found it (UTC).';
