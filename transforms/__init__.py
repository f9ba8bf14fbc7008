"""Pure polars transforms: no I/O, no Prefect, no DuckDB."""
