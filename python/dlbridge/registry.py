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

A registered *model factory* is a function whose keyword arguments are the
``modelFactoryArgs`` of ``KerasEstimator`` and which returns a ``keras.Model``.
Only registered factories (and ``module:function`` names the application lists
in ``spark.dlbridge.modelFactories.allowed``) can be named by a stage, so a
saved pipeline can name model code but never grant it.

>>> @register_model_factory("doc_mlp")
... def doc_mlp(hidden: int = 8):
...     import keras
...     return keras.Sequential([keras.Input((4,)), keras.layers.Dense(hidden)])
>>> lookup_model_factory("doc_mlp").validate({"hidden": 16})
{'hidden': 16}
"""
from __future__ import annotations

import inspect
import re
import threading
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

__all__ = [
    "Registration", "register_transformer", "registered_names", "lookup",
    "ModelFactory", "register_model_factory", "model_factory_names", "lookup_model_factory",
]

Factory = Callable[..., Callable[..., Any]]

_lock = threading.Lock()
_registry: Dict[str, "Registration"] = {}
_model_factories: Dict[str, "ModelFactory"] = {}
# A model factory's name never contains ':', which marks a ``module:function`` name.
_FACTORY_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")


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
        """Checks ``params`` against the factory's signature (see :func:`check_params`) and returns them."""
        return check_params(self.factory, params, f"Python transformer '{self.name}'", "functionParams")


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


@dataclass(frozen=True)
class ModelFactory:
    """A registered Keras model factory.

    Parameters
    ----------
    name : str
        The name the ``modelFactory`` param of ``KerasEstimator`` refers to.
    function : callable
        Keyword arguments are the ``modelFactoryArgs``; returns a ``keras.Model``.
    """

    name: str
    function: Callable[..., Any]

    def validate(self, args: Dict[str, Any]) -> Dict[str, Any]:
        """Checks ``args`` against the factory's signature (as :meth:`Registration.validate`) and returns them."""
        return check_params(self.function, args, f"Model factory '{self.name}'", "modelFactoryArgs")


def register_model_factory(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers a function returning a ``keras.Model`` as the model factory ``name``.

    Parameters
    ----------
    name : str
        The name ``KerasEstimator``'s ``modelFactory`` param refers to: letters,
        digits, ``_``, ``.`` and ``-``, never ``:`` (which marks ``module:function``).

    Returns
    -------
    callable
        A decorator that registers the function and returns it unchanged. Its
        keyword arguments are the stage's ``modelFactoryArgs``; executors import
        its module (``function.__module__``) for custom objects it registers.
    """
    if not isinstance(name, str) or not _FACTORY_NAME.match(name):
        raise ValueError(
            "register_model_factory needs a name of letters, digits, '_', '.' or '-' that starts with a "
            f"letter or '_' (no ':', which marks module:function names); received: {name!r}"
        )

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(function):
            raise TypeError(f"register_model_factory('{name}') decorates a function; received: {function!r}")
        with _lock:
            _model_factories[name] = ModelFactory(name, function)
        return function

    return decorate


def model_factory_names() -> List[str]:
    """The registered model factory names, sorted."""
    with _lock:
        return sorted(_model_factories)


def lookup_model_factory(name: str) -> ModelFactory | None:
    """The model factory registered as ``name``, or None."""
    with _lock:
        return _model_factories.get(name)


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


def check_params(function: Callable[..., Any], params: Dict[str, Any], what: str, param: str) -> Dict[str, Any]:
    """Checks the JSON ``params`` of ``function`` against its signature and returns them.

    ``what`` names the function in messages (e.g. ``"Python transformer 'plus_k'"``);
    ``param`` is the stage param that holds the JSON (e.g. ``"functionParams"``).

    Raises
    ------
    ValueError
        For an unknown or missing param (the message lists the accepted ones).
    TypeError
        For a param whose JSON value does not match the annotation or default.
    """
    signature = inspect.signature(function)
    accepted = {
        n: p for n, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    described = ", ".join(_describe(p) for p in accepted.values()) or "none"
    for key in params:
        if key not in accepted:
            raise ValueError(
                f"{what} has no param '{key}'. Accepted params: {described}. Received: {sorted(params)}. "
                f"Fix the JSON in {param}."
            )
    for name, parameter in accepted.items():
        if name not in params and parameter.default is inspect.Parameter.empty:
            raise ValueError(
                f"{what} needs param '{name}' (no default). Accepted params: {described}. "
                f"Received: {sorted(params)}. Fix the JSON in {param}."
            )
        if name in params:
            _check_type(what, param, parameter, params[name])
    return params


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


def _check_type(what: str, param: str, parameter: inspect.Parameter, value: Any) -> None:
    expected = _expected_types(parameter)
    if expected is None:
        return
    bool_mismatch = isinstance(value, bool) and bool not in expected
    if bool_mismatch or not isinstance(value, expected):
        names = " or ".join(t.__name__ for t in expected)
        raise TypeError(
            f"{what} param '{parameter.name}' expects {names}; "
            f"received {value!r} ({type(value).__name__}). Fix the JSON in {param}."
        )
