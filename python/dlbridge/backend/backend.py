"""The implementation of the JVM interface ``dlbridge.python.PythonBackend``."""
from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import sys
from typing import Any, Dict, Mapping

from pyspark.sql import DataFrame, SparkSession

from dlbridge import __version__, registry
from dlbridge import state as model_state
from dlbridge.backend.udfs import build_udf
from dlbridge.registry import call_kwargs

log = logging.getLogger(__name__)


def import_modules(names: str, shipped_files: str = "") -> None:
    """Imports the comma-separated modules (they register their stages when imported).

    Modules that arrived with ``--py-files`` (listed in ``shipped_files``, the
    value of ``spark.submit.pyFiles``) are pickled *by value* into the UDFs: with
    Spark 4's per-session artifact isolation a JVM application's executors do
    not see ``--py-files`` on their Python path, and by-value pickling makes the
    functions independent of it.
    """
    from pyspark import cloudpickle

    shipped = {os.path.basename(p) for p in shipped_files.split(",") if p.strip()}
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            raise ImportError(
                f"spark.dlbridge.python.modules names '{name}', which {sys.executable} cannot import: {e}. "
                "Fix: put the module on PYTHONPATH (and on the executors', e.g. with --py-files) "
                "or pip install it into that interpreter."
            ) from e
        if os.path.basename(getattr(module, "__file__", "") or "") in shipped:
            cloudpickle.register_pickle_by_value(module)


def parse_params(function: str, params_json: str) -> Dict[str, Any]:
    """Parses the JSON object of a stage's params, naming the function on error."""
    try:
        params = json.loads(params_json or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"Params of '{function}' are not valid JSON: {e}. Received: {params_json!r}") from e
    if not isinstance(params, dict):
        raise ValueError(f"Params of '{function}' must be a JSON object; received: {params_json!r}")
    return params


class Backend:
    """Serves the JVM: validates params, runs fit functions, builds the UDFs of registered stages.

    Every JVM stage reaches Python through these methods and the one registry
    (:mod:`dlbridge.registry`), built-in Keras stages included. Model states
    cross as ``java.util.Map<String, byte[]>`` of file names to bytes (see
    :mod:`dlbridge.state`), never as text.

    Parameters
    ----------
    spark : SparkSession
        The session of the driver this backend belongs to.
    """

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def info(self) -> str:
        return json.dumps({"pid": os.getpid(), "python": sys.version.split()[0], "executable": sys.executable,
                           "dlbridge": __version__})

    def registeredNames(self) -> str:  # noqa: N802 (Java interface)
        return json.dumps(registry.registered_names())

    def outputType(self, function: str, kind: str, params_json: str) -> str:  # noqa: N802
        registration = registry.lookup(function, kind)
        return registration.output_type(registration.validate(parse_params(function, params_json)))

    def buildUdf(self, function: str, params_json: str, state: Any) -> Any:  # noqa: N802
        registration = registry.lookup(function, "transformer" if state is None else "estimator")
        params = registration.validate(parse_params(function, params_json))
        files = None if state is None else _python_files(state)
        return build_udf(self.spark, registration, params, files)._unwrapped._judf  # type: ignore[attr-defined]

    def fit(self, function: str, params_json: str, dataset: Any, fit_id: str, initial_state: Any,
            stage_uid: str) -> Any:
        """Runs the estimator's fit function on the DataFrame; returns its state as a Java map.

        The fit runs as the fit of the stage ``stage_uid`` (:func:`dlbridge.trainer.progress.stage`),
        which names it in the trainer's progress lines and Spark job descriptions.
        """
        from dlbridge.trainer.input_cache import named_views
        from dlbridge.trainer.progress import stage

        registration = registry.lookup(function, "estimator")
        params = registration.validate(parse_params(function, params_json))
        fit = registration.fit
        kwargs = call_kwargs(fit, params, skip=1)  # type: ignore[arg-type]
        if "initialState" in inspect.signature(fit).parameters:  # type: ignore[arg-type]
            kwargs["initialState"] = None if initial_state is None else _python_files(initial_state)
        what = f"{registration.what} (fit function {getattr(fit, '__qualname__', fit)})"
        with named_views(fit_id), stage(stage_uid):  # the JVM drops the views (so uncaches them) after the fit
            try:
                state = fit(DataFrame(dataset, self.spark), **kwargs)  # type: ignore[misc]
            except Exception as e:
                raise RuntimeError(f"{what} raised {type(e).__name__}: {e}") from e
        return self._java_files(model_state.encode(state, what))

    def loadState(self, function: str, params_json: str, state: Any) -> Any:  # noqa: N802
        """Checks (and completes, with the estimator's loader) a state that did not come from its fit."""
        registration = registry.lookup(function, "estimator")
        params = registration.validate(parse_params(function, params_json))
        files = _python_files(state)
        if registration.loader is None:
            return self._java_files(files)
        loaded = registration.loader(model_state.decode(files), **call_kwargs(registration.loader, params, skip=1))
        return self._java_files(model_state.encode(loaded, f"{registration.what} (loader)"))

    def _java_files(self, files: Mapping[str, bytes]) -> Any:
        java_map = self.spark.sparkContext._jvm.java.util.HashMap()
        for name, data in files.items():
            java_map.put(name, bytearray(data))
        return java_map

    class Java:
        implements = ["dlbridge.python.PythonBackend"]


def _python_files(java_map: Any) -> Dict[str, bytes]:
    """A ``java.util.Map<String, byte[]>`` (py4j proxy) as a dict of bytes."""
    return {str(name): bytes(java_map.get(name)) for name in list(java_map.keySet())}
