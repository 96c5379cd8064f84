"""The registry of named Python stages.

A registered transformer is a *factory*: a module-level function whose keyword
arguments are the stage's params and which returns the function that maps
pandas batches to a pandas Series. The factory runs once per task on the
executors (so heavy set-up such as loading a model happens once per batch
stream, not per row), and the params are validated on the driver against the
factory's signature before any job runs.

>>> import pandas as pd
>>> @register_transformer("doc_plus_k", returns="double")
... def plus_k(k: float = 1.0):
...     def run(batch: pd.Series) -> pd.Series:
...         return batch + k
...     return run
>>> lookup("doc_plus_k").validate({"k": 2}) == {"k": 2}
True
"""
from __future__ import annotations

import inspect
import threading
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

__all__ = ["Registration", "register_transformer", "registered_names", "lookup"]

Factory = Callable[..., Callable[..., Any]]

_lock = threading.Lock()
_registry: Dict[str, "Registration"] = {}


@dataclass(frozen=True)
class Registration:
    """A registered Python transformer.

    Parameters
    ----------
    name : str
        The name Scala, Java and PySpark stages use (`function` param).
    factory : callable
        Keyword arguments are the params; returns the batch function.
    returns : str
        Spark DDL type of the output column, e.g. ``"double"`` or ``"array<float>"``.
    """

    name: str
    factory: Factory
    returns: str

    def validate(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """Checks ``params`` against the factory's signature and returns them.

        Raises
        ------
        ValueError
            For an unknown or missing param (the message lists the accepted ones).
        TypeError
            For a param whose JSON value does not match the annotation or default.
        """
        signature = inspect.signature(self.factory)
        accepted = {
            n: p for n, p in signature.parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        described = ", ".join(_describe(p) for p in accepted.values()) or "none"
        for key in params:
            if key not in accepted:
                raise ValueError(
                    f"Python transformer '{self.name}' has no param '{key}'. "
                    f"Accepted params: {described}. Received: {sorted(params)}."
                )
        for name, parameter in accepted.items():
            if name not in params and parameter.default is inspect.Parameter.empty:
                raise ValueError(
                    f"Python transformer '{self.name}' needs param '{name}' (no default). "
                    f"Accepted params: {described}. Received: {sorted(params)}."
                )
            if name in params:
                _check_type(self.name, parameter, params[name])
        return params


def register_transformer(name: str, returns: str) -> Callable[[Factory], Factory]:
    """Registers a factory as the Python transformer ``name``.

    Parameters
    ----------
    name : str
        The name the ``function`` param of ``PythonTransformer`` refers to.
    returns : str
        Spark DDL type of the output column (``"double"``, ``"array<float>"``, ...).

    Returns
    -------
    callable
        A decorator that registers the factory and returns it unchanged (so it
        stays importable by name on the executors).
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"register_transformer needs a non-empty name; received: {name!r}")
    if not returns or not isinstance(returns, str):
        raise ValueError(
            f"register_transformer('{name}') needs returns= a Spark DDL type such as 'double'; "
            f"received: {returns!r}"
        )

    def decorate(factory: Factory) -> Factory:
        if not callable(factory):
            raise TypeError(f"register_transformer('{name}') decorates a function; received: {factory!r}")
        with _lock:
            _registry[name] = Registration(name, factory, returns)
        return factory

    return decorate


def registered_names() -> List[str]:
    """The registered transformer names, sorted."""
    with _lock:
        return sorted(_registry)


def lookup(name: str) -> Registration:
    """The registration for ``name``; ``ValueError`` listing the known names if absent."""
    with _lock:
        registration = _registry.get(name)
        known = sorted(_registry)
    if registration is None:
        raise ValueError(
            f"No Python transformer is registered as '{name}'. Registered: {known or 'none'}. "
            "Fix: register it with @dlbridge.register_transformer in a module listed in "
            "spark.dlbridge.python.modules (or imported by your PySpark driver)."
        )
    return registration


def _describe(parameter: inspect.Parameter) -> str:
    hint = "" if parameter.annotation is inspect.Parameter.empty else f": {_hint_name(parameter.annotation)}"
    default = "" if parameter.default is inspect.Parameter.empty else f" = {parameter.default!r}"
    return f"{parameter.name}{hint}{default}"


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def _expected_types(parameter: inspect.Parameter) -> tuple | None:
    """The Python types a JSON value may have for this param, or None when anything goes."""
    hint = parameter.annotation
    if isinstance(hint, str):  # from __future__ annotations in the user's module
        hint = {"float": float, "int": int, "bool": bool, "str": str, "list": list, "dict": dict}.get(hint)
    if hint is None or hint is inspect.Parameter.empty:
        default = parameter.default
        if default is inspect.Parameter.empty or default is None:
            return None
        hint = type(default)
    origin = typing.get_origin(hint) or hint
    if origin is typing.Union:
        types = tuple(t for arg in typing.get_args(hint) for t in (_origin_types(arg) or ()))
        return types or None
    return _origin_types(hint)


def _origin_types(hint: Any) -> tuple | None:
    origin = typing.get_origin(hint) or hint
    if origin is float:
        return (int, float)
    if origin in (int, bool, str, list, dict):
        return (origin,)
    if origin is type(None):
        return (type(None),)
    if origin in (tuple, typing.Sequence, typing.List):
        return (list,)
    return None


def _check_type(function: str, parameter: inspect.Parameter, value: Any) -> None:
    expected = _expected_types(parameter)
    if expected is None:
        return
    bool_mismatch = isinstance(value, bool) and bool not in expected
    if bool_mismatch or not isinstance(value, expected):
        names = " or ".join(t.__name__ for t in expected)
        raise TypeError(
            f"Python transformer '{function}' param '{parameter.name}' expects {names}; "
            f"received {value!r} ({type(value).__name__}). Fix the JSON in functionParams."
        )
