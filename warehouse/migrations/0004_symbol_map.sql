-- liqheat warehouse, version 4: the symbol map. Every exchange's rows are stored under the
-- canonical (Binance USD-M style) symbol; this table says which instrument that is on each
-- exchange and how big one contract is. Its rows mirror flows.sources.symbols.SYMBOL_MAP and are
-- replaced by warehouse.writes.write_symbol_map.

CREATE TABLE IF NOT EXISTS symbol_map (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    instrument VARCHAR NOT NULL,
    base VARCHAR NOT NULL,
    quote VARCHAR NOT NULL,
    contract_size DOUBLE NOT NULL CHECK (contract_size > 0),
    contract_unit VARCHAR NOT NULL CHECK (contract_unit IN ('base', 'quote')),
    PRIMARY KEY (exchange, symbol)
);

COMMENT ON TABLE symbol_map IS 'Canonical symbol <-> exchange instrument, with contract sizes (mirrors flows.sources.symbols.SYMBOL_MAP).';
COMMENT ON COLUMN symbol_map.exchange IS 'Exchange id: binance, bybit, okx or binance-cm.';
COMMENT ON COLUMN symbol_map.symbol IS 'Canonical symbol used in every other table (Binance USD-M style, e.g. BTCUSDT).';
COMMENT ON COLUMN symbol_map.instrument IS 'The exchange''s own instrument name, e.g. BTC-USDT-SWAP (okx) or BTCUSD_PERP (binance-cm).';
COMMENT ON COLUMN symbol_map.base IS 'Base asset, e.g. BTC.';
COMMENT ON COLUMN symbol_map.quote IS 'Quote currency of the instrument: USDT for linear contracts, USD for coin-margined ones.';
COMMENT ON COLUMN symbol_map.contract_size IS 'Size of one contract in contract_unit (1 where the exchange reports quantities in base units).';
COMMENT ON COLUMN symbol_map.contract_unit IS 'base: contract_size is in base units (0.01 BTC); quote: in quote currency (100 USD).';
