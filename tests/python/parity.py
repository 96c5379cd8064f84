"""Checks that a Python wrapper and its Scala stage agree on param names, docs and defaults."""
from __future__ import annotations

from typing import Any, List

from pyspark import SparkContext
from pyspark.ml.common import _java2py
from pyspark.ml.wrapper import JavaParams


def param_mismatches(stage: JavaParams) -> List[str]:
    """Every difference between ``stage``'s Python params and its JVM object's, as messages."""
    java = stage._java_obj
    problems: List[str] = []
    if stage.uid != java.uid():
        problems.append(f"uid: Python {stage.uid} != Scala {java.uid()}")
    py_names = sorted(p.name for p in stage.params)
    java_names = sorted(jp.name() for jp in java.params())
    if py_names != java_names:
        problems.append(f"param names differ: Python {py_names} vs Scala {java_names}")
    for param in stage.params:
        if param.name not in java_names:
            continue
        jparam = java.getParam(param.name)
        if param.doc != jparam.doc():
            problems.append(f"{param.name}: doc Python {param.doc!r} vs Scala {jparam.doc()!r}")
        problems += _default_mismatch(stage, param, java, jparam)
    return problems


def _default_mismatch(stage: JavaParams, param: Any, java: Any, jparam: Any) -> List[str]:
    py_has, java_has = stage.hasDefault(param), java.hasDefault(jparam)
    if py_has != java_has:
        return [f"{param.name}: default present in Python={py_has}, Scala={java_has}"]
    if not py_has:
        return []
    java_default = _java2py(SparkContext._active_spark_context, java.getDefault(jparam).get())
    py_default = stage._defaultParamMap[param]
    if isinstance(py_default, float) or isinstance(java_default, float):
        same = abs(float(py_default) - float(java_default)) <= 1e-12
    else:
        same = py_default == java_default
    return [] if same else [f"{param.name}: default Python {py_default!r} vs Scala {java_default!r}"]
