"""The examples in the public modules' docstrings run as written."""
from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["dlbridge.registry", "dlbridge.state", "dlbridge.trainer", "dlbridge.trainer.progress",
                                    "dlbridge.trainer.seeding"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
