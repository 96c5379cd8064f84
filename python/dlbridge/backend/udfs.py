"""Builds the Arrow-vectorized UDF that runs a registered stage on the executors.

One builder for every registered stage, built-in Keras included:

* a transformer's factory, ``factory(**params)``;
* an estimator's predictor, ``predictor(state, **params)``, whose model state
  (``{file name: bytes}``, see :mod:`dlbridge.state`) reaches the executors as a
  Spark broadcast variable, not inside the UDF's pickled closure.

Either is built once per Python worker and params (and state), in the worker's
bounded cache (:mod:`dlbridge.worker_cache`), then maps every Arrow batch of
every task that worker runs. The batch function takes pandas Series (or pyarrow
arrays for ``arrow=True`` registrations), one per input column in order (the
``inputCols`` param, or one column when it is absent), and returns one value per
row.
"""
from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterator, Mapping, Tuple

import pandas as pd
import pyarrow as pa
from pyspark import Broadcast
from pyspark.sql import SparkSession
from pyspark.sql.functions import arrow_udf, pandas_udf
from pyspark.sql.types import DataType, _parse_datatype_string

from dlbridge import state as model_state
from dlbridge import worker_cache
from dlbridge.registry import Registration, call_kwargs


def build_udf(spark: SparkSession, registration: Registration, params: Dict[str, Any],
              state_files: Mapping[str, bytes] | None = None) -> Any:
    """The UDF of ``registration`` with validated ``params`` (and, for an estimator, its model state).

    Returns
    -------
    pyspark.sql.functions.UserDefinedFunction
        An iterator pandas (or Arrow) UDF; call it with the input columns.
    """
    capacity = worker_cache.configured_size(spark)
    name, params_key = registration.name, json.dumps(params, sort_keys=True)
    if registration.kind == "transformer":
        factory = registration.factory
        kwargs = dict(params)
        key: Tuple[Any, ...] = ("transformer", name, params_key)

        def build() -> Callable[..., Any]:
            return factory(**kwargs)  # type: ignore[misc]
    else:
        if state_files is None:
            raise ValueError(f"{registration.what} is an estimator: it runs as the model that "
                             "PythonEstimator.fit returns, not as a PythonTransformer. Fix: use "
                             f"PythonEstimator(function='{name}', ...).fit(df).")
        predictor = registration.factory
        kwargs = call_kwargs(predictor, params, skip=1)  # type: ignore[arg-type]
        files = {str(k): bytes(v) for k, v in state_files.items()}
        digest = model_state.digest(files)
        broadcast = _state_broadcast(spark, digest, files)
        key = ("predictor", name, digest, params_key)

        def build() -> Callable[..., Any]:
            return predictor(model_state.decode(broadcast.value), **kwargs)  # type: ignore[misc]

    what = f"{registration.what} ({key[0]})"

    return_type = _data_type(registration.output_type(params))
    if not registration.arrow:
        def run_series(batches: Iterator[Tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
            run = worker_cache.get(key, build, capacity, what)
            for batch in batches:
                yield run(*batch) if isinstance(batch, tuple) else run(batch)

        return pandas_udf(_named(run_series, name), returnType=return_type)  # type: ignore[call-overload]
    if len(params.get("inputCols") or [None]) == 1:
        def run_array(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
            run = worker_cache.get(key, build, capacity, what)
            for batch in batches:
                yield run(batch)

        return arrow_udf(_named(run_array, name), return_type)

    def run_arrays(batches: Iterator[Tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
        run = worker_cache.get(key, build, capacity, what)
        for batch in batches:
            yield run(*batch)

    return arrow_udf(_named(run_arrays, name), return_type)


# (id of the SparkContext, state digest) -> (that SparkContext, the broadcast); holding the context
# keeps its id from being reused by a later one. Most recently used last.
_BROADCASTS: "OrderedDict[Tuple[int, str], Tuple[Any, Broadcast]]" = OrderedDict()
_BROADCASTS_KEPT = 8
_LOCK = threading.Lock()


def _state_broadcast(spark: SparkSession, digest: str, files: Dict[str, bytes]) -> Broadcast:
    """The broadcast variable of a state, shared by the UDFs built for it (a model's copies, its
    transforms with other params) while it is among the last few states used."""
    sc = spark.sparkContext
    key = (id(sc), digest)
    with _LOCK:
        if key in _BROADCASTS:
            _BROADCASTS.move_to_end(key)
            return _BROADCASTS[key][1]
        broadcast = sc.broadcast(files)
        # PySpark deletes a broadcast's driver-side file only in destroy(); let the JVM delete it once
        # Spark's ContextCleaner has cleaned the broadcast (no plan or Python object holds it).
        sc._jvm.org.apache.spark.ml.dlbridge.SparkShims.deleteWhenBroadcastCleaned(
            sc._jsc.sc(), broadcast._jbroadcast.id(), broadcast._path)
        _BROADCASTS[key] = (sc, broadcast)
        while len(_BROADCASTS) > _BROADCASTS_KEPT:  # forgotten here only: the UDFs holding one keep it
            _BROADCASTS.popitem(last=False)
        return broadcast


@functools.lru_cache(maxsize=64)
def _data_type(ddl: str) -> DataType:
    """The Spark type of a DDL string, parsed once (parsing asks the JVM)."""
    return _parse_datatype_string(ddl)


def _named(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    function.__name__ = name.replace(".", "_")
    return function
