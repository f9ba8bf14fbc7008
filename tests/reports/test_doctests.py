"""The examples in the report modules' docstrings are run (they must hold as written)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import reports

MODULES = sorted(m.name for m in pkgutil.iter_modules(reports.__path__, "reports.") if not m.ispkg)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) fail in {name}"
