-- liqheat warehouse, version 1: market data, ingest ledger, model outputs.
-- All times are UTC, stored as TIMESTAMP without time zone. Prices in quote currency (USDT),
-- notional/USD columns in USD (USDT taken as USD).

CREATE TABLE IF NOT EXISTS klines (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    open DOUBLE,
    high DOUBLE,
    low DOUBLE,
    close DOUBLE,
    volume DOUBLE,
    quote_volume DOUBLE,
    trades BIGINT,
    taker_buy_volume DOUBLE,
    taker_buy_quote_volume DOUBLE
);

CREATE TABLE IF NOT EXISTS mark_klines (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    open DOUBLE,
    high DOUBLE,
    low DOUBLE,
    close DOUBLE
);

CREATE TABLE IF NOT EXISTS open_interest (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    oi_base DOUBLE,
    oi_usd DOUBLE,
    top_trader_account_ratio DOUBLE,
    top_trader_position_ratio DOUBLE,
    global_account_ratio DOUBLE,
    taker_buy_sell_ratio DOUBLE
);

CREATE TABLE IF NOT EXISTS funding_rates (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    funding_interval_hours INTEGER,
    funding_rate DOUBLE
);

-- per-minute traded-volume profile from aggTrades (optional, --with-trades)
CREATE TABLE IF NOT EXISTS trade_profile (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    price DOUBLE NOT NULL,
    volume DOUBLE,
    buy_volume DOUBLE
);

CREATE TABLE IF NOT EXISTS realized_liquidations (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    side VARCHAR NOT NULL,
    usd DOUBLE NOT NULL,
    source VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS ingest_log (
    exchange VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    day DATE NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('loaded', 'missing', 'failed')),
    rows BIGINT,
    sha256 VARCHAR,
    error VARCHAR,
    loaded_at TIMESTAMP NOT NULL,
    source_url VARCHAR,
    PRIMARY KEY (exchange, dataset, symbol, day)
);

CREATE TABLE IF NOT EXISTS model_runs (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    params_json VARCHAR NOT NULL,
    start_ts TIMESTAMP,
    end_ts TIMESTAMP,
    bars BIGINT,
    levels BIGINT,
    price_step DOUBLE,
    seconds DOUBLE,
    computed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (exchange, symbol, params_hash)
);

CREATE TABLE IF NOT EXISTS liq_levels (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    side VARCHAR NOT NULL,
    leverage DOUBLE NOT NULL,
    price DOUBLE NOT NULL,
    notional_usd DOUBLE NOT NULL,
    liquidated_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS heatmap_cells (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    price DOUBLE NOT NULL,
    long_usd DOUBLE NOT NULL,
    short_usd DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS liquidation_map (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    as_of TIMESTAMP NOT NULL,
    ref_price DOUBLE NOT NULL,
    price DOUBLE NOT NULL,
    long_usd DOUBLE NOT NULL,
    short_usd DOUBLE NOT NULL,
    long_cum_usd DOUBLE NOT NULL,
    short_cum_usd DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS key_levels (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    as_of TIMESTAMP NOT NULL,
    side VARCHAR NOT NULL,
    rank INTEGER NOT NULL,
    price DOUBLE NOT NULL,
    usd DOUBLE NOT NULL,
    distance_pct DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS predicted_liquidations (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    long_usd DOUBLE NOT NULL,
    short_usd DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS backtest_scores (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    params_hash VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    side VARCHAR NOT NULL,
    capture_auc DOUBLE,
    top_decile_overlap DOUBLE,
    log_corr DOUBLE,
    bars BIGINT,
    realized_usd DOUBLE,
    start_ts TIMESTAMP,
    end_ts TIMESTAMP,
    realized_source VARCHAR,
    computed_at TIMESTAMP NOT NULL
);
