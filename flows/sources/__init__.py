"""Exchange sources: one module per exchange, each yielding canonical frames per symbol-day.

See :mod:`flows.sources.base` for the interface every source implements.
"""
