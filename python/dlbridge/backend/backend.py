"""The implementation of the JVM interface ``dlbridge.python.PythonBackend``."""
from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import threading
from typing import Any, Callable, Dict, List

from pyspark.sql import SparkSession

from dlbridge import registry
from dlbridge.backend.udfs import build_pandas_udf

log = logging.getLogger(__name__)

Entry = Callable[[SparkSession, Dict[str, Any], List[Any]], Any]
_entries: Dict[str, Entry] = {}
_entries_lock = threading.Lock()
# Built-in entries live in modules imported on first use (they import TensorFlow).
_ENTRY_MODULES = {"keras.": "dlbridge.keras_entries"}


def register_entry(name: str) -> Callable[[Entry], Entry]:
    """Registers a backend entry reachable from the JVM through ``PythonBackend.invoke``."""

    def decorate(function: Entry) -> Entry:
        with _entries_lock:
            _entries[name] = function
        return function

    return decorate


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
    """Serves the JVM: validates params, builds pandas UDFs, runs named entries.

    Parameters
    ----------
    spark : SparkSession
        The session of the driver this backend belongs to.
    """

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark

    def info(self) -> str:
        return json.dumps({"pid": os.getpid(), "python": sys.version.split()[0], "executable": sys.executable})

    def registeredNames(self) -> str:  # noqa: N802 (Java interface)
        return json.dumps(registry.registered_names())

    def outputType(self, function: str, params_json: str) -> str:  # noqa: N802
        registration = registry.lookup(function)
        registration.validate(parse_params(function, params_json))
        return registration.returns

    def buildUdf(self, function: str, params_json: str) -> Any:  # noqa: N802
        registration = registry.lookup(function)
        params = registration.validate(parse_params(function, params_json))
        return build_pandas_udf(registration, params)._unwrapped._judf  # type: ignore[attr-defined]

    def invoke(self, entry: str, args_json: str, handles: Any) -> Any:
        for prefix, module in _ENTRY_MODULES.items():
            if entry.startswith(prefix):
                importlib.import_module(module)
        with _entries_lock:
            function = _entries.get(entry)
            known = sorted(_entries)
        if function is None:
            raise ValueError(f"No backend entry named '{entry}'. Known entries: {known or 'none'}.")
        return function(self.spark, json.loads(args_json or "{}"), list(handles or []))

    class Java:
        implements = ["dlbridge.python.PythonBackend"]
