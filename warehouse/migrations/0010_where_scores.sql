-- liqheat warehouse, version 10: where-scores (transforms/where.py) of every model run, and the
-- size coverage statement of the per-bar backtest scores (issue 19).

ALTER TABLE backtest_scores ADD COLUMN IF NOT EXISTS coverage DOUBLE;
ALTER TABLE backtest_scores ADD COLUMN IF NOT EXISTS size_ratio_at_coverage DOUBLE;
COMMENT ON COLUMN backtest_scores.coverage IS 'Assumed share of the OI''s market that the realized feed covers (1 = the same exchanges; e.g. 0.12 for all-exchange BTC OI against Binance-only realized liquidations).';
COMMENT ON COLUMN backtest_scores.size_ratio_at_coverage IS 'predicted_usd x coverage / realized_usd: the size ratio on the realized feed''s own market.';

CREATE TABLE IF NOT EXISTS where_scores (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    side VARCHAR NOT NULL,
    bin VARCHAR NOT NULL,
    n BIGINT,
    model DOUBLE,
    "null" DOUBLE,
    lift DOUBLE,
    lo DOUBLE,
    hi DOUBLE,
    first_decision TIMESTAMP,
    last_decision TIMESTAMP,
    step_hours DOUBLE,
    horizon_hours DOUBLE,
    start_ts TIMESTAMP,
    end_ts TIMESTAMP,
    realized_source VARCHAR,
    computed_at TIMESTAMP NOT NULL
);

COMMENT ON TABLE where_scores IS 'Where-scores of a model run, without look-ahead (docs/model.md, Where-scores): does price reach the strongest cluster more often than a level at the same distance (magnet), do realized liquidations happen near the top-3 clusters (realized_near), does the long/short imbalance say where price goes (direction). One row per score, side and distance bin; history kept per scored window like backtest_scores.';
COMMENT ON COLUMN where_scores.exchange IS 'Exchange id, e.g. binance.';
COMMENT ON COLUMN where_scores.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN where_scores.params_hash IS 'Model run (see model_runs).';
COMMENT ON COLUMN where_scores.name IS 'magnet (strongest cluster touched within the horizon), realized_near (share of the horizon''s realized USD within 0.5 % of the top-3 clusters), direction_corr (correlation of the band imbalance with the horizon''s return), direction_agree (share of decisions where price moved toward the bigger pool).';
COMMENT ON COLUMN where_scores.side IS 'long, short or both.';
COMMENT ON COLUMN where_scores.bin IS 'all, or the distance bin of the model''s cluster (magnet only): 0.5-1 %, 1-2 %, 2-4 %, 4-8 %.';
COMMENT ON COLUMN where_scores.n IS 'Decision-sides scored (decisions for direction).';
COMMENT ON COLUMN where_scores.model IS 'The model''s figure: touch share (magnet), share of realized USD (realized_near), correlation or agreement share (direction).';
COMMENT ON COLUMN where_scores."null" IS 'The same figure for a level at the same distance and side at other non-overlapping decision times (0 for direction_corr, 0.5 for direction_agree).';
COMMENT ON COLUMN where_scores.lift IS 'model / null (1 = no better than a level at the same distance; NULL for direction_corr).';
COMMENT ON COLUMN where_scores.lo IS 'Lower end of the 95 % moving-block bootstrap interval (2-day blocks) of the lift (of the model figure for direction).';
COMMENT ON COLUMN where_scores.hi IS 'Upper end of the 95 % moving-block bootstrap interval of the lift (of the model figure for direction).';
COMMENT ON COLUMN where_scores.first_decision IS 'First decision time (UTC).';
COMMENT ON COLUMN where_scores.last_decision IS 'Last decision time (UTC).';
COMMENT ON COLUMN where_scores.step_hours IS 'Hours between decision times (on the UTC grid).';
COMMENT ON COLUMN where_scores.horizon_hours IS 'Hours after a decision in which a touch or realized USD counts.';
COMMENT ON COLUMN where_scores.start_ts IS 'First bar of the model run (UTC).';
COMMENT ON COLUMN where_scores.end_ts IS 'Last bar of the model run (UTC).';
COMMENT ON COLUMN where_scores.realized_source IS 'Sources of the realized liquidations used by realized_near (empty: bars only).';
COMMENT ON COLUMN where_scores.computed_at IS 'When the scores were computed (UTC).';
