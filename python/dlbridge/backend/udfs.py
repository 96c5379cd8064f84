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

import json
from typing import Any, Callable, Dict, Iterator, Mapping, Tuple

import pandas as pd
import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql.functions import arrow_udf, pandas_udf

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
        broadcast = spark.sparkContext.broadcast(files)
        key = ("predictor", name, model_state.digest(files), params_key)

        def build() -> Callable[..., Any]:
            return predictor(model_state.decode(broadcast.value), **kwargs)  # type: ignore[misc]

    what = f"{registration.what} ({key[0]})"

    return_type = registration.output_type(params)
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


def _named(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    function.__name__ = name.replace(".", "_")
    return function
