"""The examples in the docstrings of the shared checks, the planner and the read helpers hold
as written (the modules whose examples need no network and no warehouse)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["flows.errors", "flows.options", "flows.ingest", "flows.staging", "warehouse.reads"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"no examples run in {name}"
    assert result.failed == 0, f"{result.failed} docstring example(s) fail in {name}"
