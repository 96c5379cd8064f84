"""Builds the Arrow-vectorized pandas UDF that runs a registered transformer."""
from __future__ import annotations

from typing import Any, Dict, Iterator, Tuple

import pandas as pd
from pyspark.sql.functions import pandas_udf

from dlbridge.registry import Registration


def build_pandas_udf(registration: Registration, params: Dict[str, Any]) -> Any:
    """An iterator pandas UDF: the factory runs once per task, then maps every Arrow batch.

    The closure captures only the factory (pickled by reference: it must be
    importable on the executors) and the params.
    """
    factory = registration.factory
    kwargs = dict(params)

    def run_batches(batches: Iterator[Tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        run = factory(**kwargs)
        for batch in batches:
            yield run(*batch) if isinstance(batch, tuple) else run(batch)

    run_batches.__name__ = registration.name
    return pandas_udf(run_batches, returnType=registration.returns)  # type: ignore[call-overload]
