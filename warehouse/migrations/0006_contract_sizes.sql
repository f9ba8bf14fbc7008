-- liqheat warehouse, version 6: contract sizes read from the exchanges. OKX and Bybit sizes are
-- no longer hard-coded: each source reads them from the exchange's public instruments endpoint
-- and the loader caches them here with the day they were read. Rows whose size has not been
-- read yet keep contract_size NULL.

ALTER TABLE symbol_map ALTER COLUMN contract_size DROP NOT NULL;
ALTER TABLE symbol_map ADD COLUMN size_read_on DATE;

COMMENT ON COLUMN symbol_map.contract_size IS 'Size of one contract in contract_unit (1 where the exchange reports quantities in base units); for okx and bybit read from the exchange''s instruments endpoint (NULL until read).';
COMMENT ON COLUMN symbol_map.size_read_on IS 'UTC day contract_size was read from the exchange''s instruments endpoint (OKX /api/v5/public/instruments, Bybit /v5/market/instruments-info); NULL for sizes fixed by the exchange''s contract specification (binance, binance-cm).';
