"""Plumbing shared by the Python wrappers of the Scala stages in ``dlbridge.ml``.

The wrappers are thin ``JavaWrapper`` classes, like ``pyspark.ml`` over Spark's
Scala stages: the Scala class owns params, schema checks and persistence.

Each wrapper class sets ``__module__ = "dlbridge.ml"``: pyspark derives the
JVM class of a Python stage from its module and name (``JavaMLReader`` in a
classic session, ``RemoteMLReader`` under Spark Connect), and the Scala
classes are ``dlbridge.ml.<Class>``.

Under Spark Connect (``is_remote()``) the stages run in the server's JVM
driver, which starts its own Python backend (the companion process) for the
functions named in the *server's* ``spark.dlbridge.python.modules``; this
client only sends params and plans.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Union

from pyspark.ml.wrapper import JavaTransformer
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.utils import is_remote

from dlbridge.backend import ensure_backend


def ensure_driver_backend(session: SparkSession) -> None:
    """Registers this PySpark driver as the stages' Python backend; nothing to do under Spark Connect.

    A Connect client holds no JVM: the server's driver starts the companion
    backend itself on the first call of a stage.
    """
    if not is_remote():
        ensure_backend(session)


def require_classic(what: str, fix: str) -> None:
    """Raises ``NotImplementedError`` naming ``what`` and ``fix`` when this client runs under Spark Connect.

    Spark Connect ML lets a client call only the methods Spark allow-lists on
    its own model classes, so members that ask the JVM object directly cannot
    be served remotely.
    """
    if is_remote():
        raise NotImplementedError(
            f"{what} is not available under Spark Connect: Spark Connect ML lets clients call only the "
            f"methods Spark allow-lists for its own models. Fix: {fix}")


class PythonBackedTransformer(JavaTransformer):
    """A JVM transformer whose work runs in Python: registers this driver as its backend first."""

    def _transform(self, dataset: DataFrame) -> DataFrame:
        ensure_driver_backend(dataset.sparkSession)
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
