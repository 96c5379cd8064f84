"""Scala/Python param parity (names, docs, defaults) for every stage in dlbridge.ml."""
from __future__ import annotations

import pytest

import dlbridge.ml
from parity import param_mismatches


@pytest.mark.parametrize("name", dlbridge.ml.__all__)
def test_params_match_scala(spark, name: str) -> None:
    stage = getattr(dlbridge.ml, name)()
    assert param_mismatches(stage) == []


def test_a_drift_is_detected(spark) -> None:
    """The checker itself: a Python default changed on purpose must be reported."""
    stage = dlbridge.ml.PythonTransformer()
    stage._setDefault(functionParams='{"k": 1}')
    assert any("functionParams: default" in m for m in param_mismatches(stage))
