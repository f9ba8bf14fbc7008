"""The examples in the transforms' docstrings are run (pure code: they must hold as written)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import transforms

MODULES = sorted(
    m.name for m in pkgutil.iter_modules(transforms.__path__, "transforms.") if not m.ispkg
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) fail in {name}"
