"""Prefect flows, thin tasks, exchange clients and the ``liqheat`` command line."""
