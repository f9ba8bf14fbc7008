"""DuckDB warehouse: schema migrations, all writes, and read helpers.

The writer opens the database file only for short transactions (one load, one model
result), so readers (``liqheat sql``, the report stage, a user's own DuckDB shell) are
never locked out for longer than a single load.
"""
