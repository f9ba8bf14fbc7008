-- Pipeline run summaries: one row per (run, symbol), written at the end of every
-- nightly, backfill and demo run.

CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR NOT NULL,
    flow VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('completed', 'failed')),
    days_loaded INTEGER NOT NULL,
    days_skipped INTEGER NOT NULL,
    days_missing INTEGER NOT NULL,
    days_failed INTEGER NOT NULL,
    rows BIGINT NOT NULL,
    ingest_seconds DOUBLE,
    model_seconds DOUBLE,
    report_seconds DOUBLE,
    problems VARCHAR,
    PRIMARY KEY (run_id, symbol)
);

COMMENT ON TABLE runs IS 'Pipeline run summaries: one row per (run, symbol), written when a nightly, backfill or demo run ends.';
COMMENT ON COLUMN runs.run_id IS 'Prefect flow-run id (or a generated id outside Prefect).';
COMMENT ON COLUMN runs.flow IS 'Flow name: liqheat-nightly, liqheat-backfill or liqheat-demo.';
COMMENT ON COLUMN runs.symbol IS 'Contract symbol, e.g. BTCUSDT.';
COMMENT ON COLUMN runs.started_at IS 'Run start, UTC.';
COMMENT ON COLUMN runs.finished_at IS 'Run end, UTC.';
COMMENT ON COLUMN runs.status IS 'completed, or failed when any file of this symbol failed to load.';
COMMENT ON COLUMN runs.days_loaded IS 'Dataset-days (or months) loaded in this run.';
COMMENT ON COLUMN runs.days_skipped IS 'Dataset-days skipped because they were already loaded (or not yet due).';
COMMENT ON COLUMN runs.days_missing IS 'Dataset-days the archive does not have (404: not yet published, or a gap).';
COMMENT ON COLUMN runs.days_failed IS 'Dataset-days that failed (checksum, corrupt file, network); see ingest_log.error.';
COMMENT ON COLUMN runs.rows IS 'Rows loaded for this symbol in this run.';
COMMENT ON COLUMN runs.ingest_seconds IS 'Wall-clock seconds of the whole ingest stage (all symbols).';
COMMENT ON COLUMN runs.model_seconds IS 'Wall-clock seconds of this symbol''s model run.';
COMMENT ON COLUMN runs.report_seconds IS 'Wall-clock seconds of the report stage (all symbols).';
COMMENT ON COLUMN runs.problems IS 'Missing and failed files of this symbol with their reasons, one per line.';
