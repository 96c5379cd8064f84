"""Plumbing shared by the Python wrappers of the Scala stages in ``dlbridge.ml``.

The wrappers are thin ``JavaWrapper`` classes, like ``pyspark.ml`` over Spark's
Scala stages: the Scala class owns params, schema checks and persistence.
Because the JVM classes live in ``dlbridge.ml`` (not ``org.apache.spark``),
the reader maps ``dlbridge.ml.<module>.<Class>`` to ``dlbridge.ml.<Class>``.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Generic, Type, TypeVar, Union

from pyspark.ml.util import JavaMLReadable, JavaMLReader
from pyspark.ml.wrapper import JavaTransformer
from pyspark.sql import DataFrame

from dlbridge.backend import ensure_backend

RL = TypeVar("RL")


class DlbridgeJavaMLReader(JavaMLReader, Generic[RL]):
    """Loads a saved dlbridge stage through its Scala class ``dlbridge.ml.<Class>``."""

    @classmethod
    def _java_loader_class(cls, clazz: Type[Any]) -> str:
        return "dlbridge.ml." + clazz.__name__


class DlbridgeJavaMLReadable(JavaMLReadable[RL]):
    """``read()`` / ``load(path)`` for dlbridge stages saved from Scala, Java or PySpark."""

    @classmethod
    def read(cls) -> DlbridgeJavaMLReader[RL]:
        return DlbridgeJavaMLReader(cls)


class PythonBackedTransformer(JavaTransformer):
    """A JVM transformer whose work runs in Python: registers this driver as its backend first."""

    def _transform(self, dataset: DataFrame) -> DataFrame:
        ensure_backend(dataset.sparkSession)
        return super()._transform(dataset)


def to_json_object(value: Union[str, Dict[str, Any]]) -> str:
    """Param type converter: a dict becomes its JSON text; a string must already be a JSON object."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as e:
            raise TypeError(f"Expected a JSON object such as '{{\"k\": 2.5}}'; received: {value!r}") from e
        if isinstance(parsed, dict):
            return value
    raise TypeError(f"Expected a dict or a JSON object string such as '{{\"k\": 2.5}}'; received: {value!r}")
