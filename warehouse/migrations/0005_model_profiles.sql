-- liqheat warehouse, version 5: the model in trader terms and calibrated profiles.
-- backtest_scores gains the trader-terms figures of transforms.backtest.score; model_profiles
-- holds the parameter sets fitted by `liqheat calibrate` (used by `liqheat model --profile` and
-- the nightly flow via LIQHEAT_MODEL_PROFILE); v_backtest shows the new figures.

ALTER TABLE backtest_scores ADD COLUMN IF NOT EXISTS top_decile_capture DOUBLE;
ALTER TABLE backtest_scores ADD COLUMN IF NOT EXISTS near_key_level_share DOUBLE;
ALTER TABLE backtest_scores ADD COLUMN IF NOT EXISTS predicted_usd DOUBLE;
ALTER TABLE backtest_scores ADD COLUMN IF NOT EXISTS size_ratio DOUBLE;

COMMENT ON COLUMN backtest_scores.top_decile_capture IS 'Share of realized USD that happened in the 10 % of bars the method ranked highest (no skill: about 0.10).';
COMMENT ON COLUMN backtest_scores.near_key_level_share IS 'Share of realized USD in bars whose range came within 1 % of a key level listed before the bar (model only).';
COMMENT ON COLUMN backtest_scores.predicted_usd IS 'Predicted liquidations over the scored bars, USD.';
COMMENT ON COLUMN backtest_scores.size_ratio IS 'predicted_usd / realized_usd (realized feeds are throttled: realized USD is a lower bound).';

CREATE TABLE IF NOT EXISTS model_profiles (
    name VARCHAR PRIMARY KEY,
    params_json VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    fitted_on VARCHAR NOT NULL,
    train_start TIMESTAMP NOT NULL,
    train_end TIMESTAMP NOT NULL,
    test_start TIMESTAMP NOT NULL,
    test_end TIMESTAMP NOT NULL,
    size_ratio_long DOUBLE,
    size_ratio_short DOUBLE,
    scores_json VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL
);

COMMENT ON TABLE model_profiles IS 'Named model parameter sets fitted by liqheat calibrate on the first part of a realized history and scored on the held-back rest.';
COMMENT ON COLUMN model_profiles.name IS 'Profile name (liqheat model --profile NAME, LIQHEAT_MODEL_PROFILE).';
COMMENT ON COLUMN model_profiles.params_json IS 'The fitted transforms.params.ModelParams as canonical JSON.';
COMMENT ON COLUMN model_profiles.params_hash IS 'Hash of params_json (the key model outputs are stored under).';
COMMENT ON COLUMN model_profiles.fitted_on IS 'What the profile was fitted on: exchange:symbol or file:NAME.';
COMMENT ON COLUMN model_profiles.train_start IS 'First bar of the fitting part (UTC).';
COMMENT ON COLUMN model_profiles.train_end IS 'Last bar of the fitting part (UTC).';
COMMENT ON COLUMN model_profiles.test_start IS 'First bar of the held-back part (UTC).';
COMMENT ON COLUMN model_profiles.test_end IS 'Last bar of the held-back part (UTC).';
COMMENT ON COLUMN model_profiles.size_ratio_long IS 'Predicted / realized long USD on the held-back part (divide predictions by it for calibrated USD).';
COMMENT ON COLUMN model_profiles.size_ratio_short IS 'Predicted / realized short USD on the held-back part.';
COMMENT ON COLUMN model_profiles.scores_json IS 'The time-split table (train/test x fitted/defaults/baseline x side) as JSON rows.';
COMMENT ON COLUMN model_profiles.created_at IS 'When the profile was fitted (UTC).';

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
       m.computed_at,
       m.top_decile_capture AS model_top_decile_capture,
       b.top_decile_capture AS baseline_top_decile_capture,
       m.near_key_level_share AS model_near_key_level_share,
       m.size_ratio AS model_size_ratio
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
COMMENT ON COLUMN v_backtest.bars IS 'Number of bars scored (the model''s warm-up dropped).';
COMMENT ON COLUMN v_backtest.realized_usd IS 'Total realized liquidations over the scored bars, USD.';
COMMENT ON COLUMN v_backtest.start_ts IS 'First bar of the model window (UTC).';
COMMENT ON COLUMN v_backtest.end_ts IS 'Last scored bar (UTC).';
COMMENT ON COLUMN v_backtest.realized_source IS 'Source of the realized liquidations.';
COMMENT ON COLUMN v_backtest.params_hash IS 'Current model run.';
COMMENT ON COLUMN v_backtest.computed_at IS 'When the model scores were computed (UTC).';
COMMENT ON COLUMN v_backtest.model_top_decile_capture IS 'Share of realized USD in the model''s top 10 % bars.';
COMMENT ON COLUMN v_backtest.baseline_top_decile_capture IS 'Share of realized USD in the baseline''s top 10 % bars.';
COMMENT ON COLUMN v_backtest.model_near_key_level_share IS 'Share of realized USD within 1 % of a key level listed before the bar.';
COMMENT ON COLUMN v_backtest.model_size_ratio IS 'Model predicted / realized USD (realized is a lower bound).';

CREATE OR REPLACE VIEW v_calibrated_predictions AS
SELECT p.exchange, p.symbol, p.ts, c.name AS profile,
       p.long_usd / c.size_ratio_long AS long_usd,
       p.short_usd / c.size_ratio_short AS short_usd,
       p.long_usd AS raw_long_usd, p.short_usd AS raw_short_usd, p.params_hash
FROM predicted_liquidations AS p
JOIN model_profiles AS c USING (params_hash)
WHERE c.size_ratio_long > 0 AND c.size_ratio_short > 0;

COMMENT ON VIEW v_calibrated_predictions IS 'Predicted liquidations of runs made with a profile fitted on that symbol (calibrate --symbol), scaled to realized USD by the profile''s held-back size ratio (realized is a throttled lower bound).';
COMMENT ON COLUMN v_calibrated_predictions.exchange IS 'Exchange id.';
COMMENT ON COLUMN v_calibrated_predictions.symbol IS 'Contract symbol.';
COMMENT ON COLUMN v_calibrated_predictions.ts IS 'Bar open (UTC).';
COMMENT ON COLUMN v_calibrated_predictions.profile IS 'The profile (model_profiles.name) the run used.';
COMMENT ON COLUMN v_calibrated_predictions.long_usd IS 'Predicted long liquidations divided by the profile''s size_ratio_long, USD.';
COMMENT ON COLUMN v_calibrated_predictions.short_usd IS 'Predicted short liquidations divided by the profile''s size_ratio_short, USD.';
COMMENT ON COLUMN v_calibrated_predictions.raw_long_usd IS 'Model output before scaling, USD.';
COMMENT ON COLUMN v_calibrated_predictions.raw_short_usd IS 'Model output before scaling, USD.';
COMMENT ON COLUMN v_calibrated_predictions.params_hash IS 'Model run.';
