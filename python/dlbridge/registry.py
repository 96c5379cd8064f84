"""The one registry of named Python stages: transformers, estimators and model factories.

A registered *transformer* is a factory: a module-level function whose keyword
arguments are the stage's params and which returns the function that maps
pandas batches to a pandas Series. The factory runs once per Python worker and
params (it is cached there, see :mod:`dlbridge.worker_cache`), so heavy set-up
such as loading a model happens once per worker, not per task or row; the params
are validated on the driver against the factory's signature before any job runs.

>>> import pandas as pd
>>> @register_transformer("doc_plus_k", returns="double")
... def plus_k(k: float = 1.0):
...     def run(batch: pd.Series) -> pd.Series:
...         return batch + k
...     return run
>>> lookup("doc_plus_k").validate({"k": 2}) == {"k": 2}
True

A registered *estimator* is a fit function, which runs in the driver's Python
backend on the training DataFrame and returns the model state (see
:mod:`dlbridge.state`), plus a *predictor* factory that turns the state into the
batch function of the fitted model's ``transform``:

>>> import numpy as np
>>> @register_estimator("doc_mean", returns="double")
... def doc_mean(df, inputCols: list, scale: float = 1.0) -> dict:
...     return {"mean": np.asarray(df.select(*inputCols).toPandas().mean(), dtype=float)}
>>> @doc_mean.predictor
... def doc_mean_predictor(state: dict, scale: float = 1.0):
...     return lambda *cols: sum(cols) * 0 + float(state["mean"].sum()) * scale
>>> lookup("doc_mean").validate({"scale": 2.0, "inputCols": ["x"]})
{'scale': 2.0, 'inputCols': ['x']}

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

import importlib
import inspect
import re
import threading
import typing
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Union

__all__ = [
    "Registration", "RegisteredEstimator", "register_transformer", "register_estimator", "registered_names",
    "lookup", "COLUMN_PARAMS", "ModelFactory", "register_model_factory", "model_factory_names",
    "lookup_model_factory",
]

Factory = Callable[..., Callable[..., Any]]
Returns = Union[str, Callable[[Dict[str, Any]], str]]

# Column params of PythonEstimator: passed to a fit function or predictor only if it declares them.
COLUMN_PARAMS = ("inputCols", "labelCol", "weightCol")
# Built-in stages, registered by importing their module on first lookup (they import TensorFlow).
_BUILTIN_MODULES = {"keras": "dlbridge.keras_stage"}

_lock = threading.Lock()
_registry: Dict[str, "Registration"] = {}
_model_factories: Dict[str, "ModelFactory"] = {}
# A model factory's name never contains ':', which marks a ``module:function`` name.
_FACTORY_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")


@dataclass(frozen=True)
class Registration:
    """A registered Python stage: a transformer, or an estimator with its predictor.

    Parameters
    ----------
    name : str
        The name Scala, Java and PySpark stages use (their ``function`` param).
    kind : str
        ``"transformer"`` or ``"estimator"``.
    factory : callable or None
        Transformer: keyword arguments are the params; returns the batch function.
        Estimator: the predictor, called as ``predictor(state, **params)``; returns
        the batch function (None until ``@<fit>.predictor`` registers it).
    returns : str or callable
        Spark DDL type of the output column, e.g. ``"double"``, or a function of
        the params that returns it.
    fit : callable or None
        Estimator only: ``fit(df, **params)`` returns the model state.
    arrow : bool
        Whether the batch function takes and returns ``pyarrow`` arrays instead
        of pandas Series (the built-in Keras model uses it for zero-copy input).
    loader : callable or None
        Estimator only, optional: ``loader(state, **params)`` checks and completes a
        state that did not come from ``fit`` (e.g. a model file trained elsewhere).
    """

    name: str
    kind: str
    factory: Callable[..., Any] | None
    returns: Returns
    fit: Callable[..., Any] | None = None
    arrow: bool = False
    loader: Callable[..., Any] | None = None

    @property
    def what(self) -> str:
        """How messages name it, e.g. ``"Python estimator 'centroids'"``."""
        return f"Python {self.kind} '{self.name}'"

    def validate(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """Checks ``params`` against the signature(s) and returns them.

        A transformer's params must match its factory (see :func:`check_params`).
        An estimator's must each be accepted by its fit function or its predictor,
        and each must get the params it requires; the column params (``inputCols``,
        ``labelCol``, ``weightCol``) are passed only to the functions that declare them.
        """
        if self.kind == "transformer":
            return check_params(self.factory, params, self.what, "functionParams")  # type: ignore[arg-type]
        if self.factory is None:
            raise ValueError(f"{self.what} has no predictor. Fix: decorate the function that builds the batch "
                             f"function with @{getattr(self.fit, '__name__', 'fit')}.predictor in the module "
                             "that registers the estimator.")
        functions = [(self.fit, 1), (self.factory, 1)]
        accepted = set().union(*(_accepted(f, skip) for f, skip in functions))
        open_ended = any(_takes_any(f) for f, _ in functions)
        for key in params:
            if key not in accepted and key not in COLUMN_PARAMS and not open_ended:
                raise ValueError(
                    f"{self.what} has no param '{key}'. Accepted params: "
                    f"{', '.join(sorted(accepted - set(COLUMN_PARAMS))) or 'none'}. Received: {sorted(params)}. "
                    "Fix the JSON in functionParams.")
        for function, skip in functions:
            check_params(function, call_kwargs(function, params, skip), self.what, "functionParams", skip=skip)  # type: ignore[arg-type]
        return params

    def output_type(self, params: Dict[str, Any]) -> str:
        """The Spark DDL type of the output column for ``params``."""
        return self.returns(params) if callable(self.returns) else self.returns


class RegisteredEstimator:
    """What ``@register_estimator`` returns: the fit function, still callable, with ``.predictor``
    (and ``.loader``) decorators that complete the registration."""

    def __init__(self, name: str, fit: Callable[..., Any]) -> None:
        self.name = name
        self.fit = fit
        self.__doc__ = fit.__doc__
        self.__name__ = getattr(fit, "__name__", name)
        self.__module__ = getattr(fit, "__module__", __name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fit(*args, **kwargs)

    def predictor(self, factory: Callable[..., Callable[..., Any]]) -> Callable[..., Callable[..., Any]]:
        """Registers ``factory(state, **params)`` (it returns the batch function) as the predictor."""
        if not callable(factory):
            raise TypeError(f"@{self.__name__}.predictor decorates a function; received: {factory!r}")
        _update(self.name, factory=factory)
        return factory

    def loader(self, function: Callable[..., Dict[str, Any]]) -> Callable[..., Dict[str, Any]]:
        """Registers ``function(state, **params)``, which checks and completes a state not made by fit."""
        _update(self.name, loader=function)
        return function


def register_transformer(name: str, returns: Returns) -> Callable[[Factory], Factory]:
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
    _check_name_and_returns("register_transformer", name, returns)

    def decorate(factory: Factory) -> Factory:
        if not callable(factory):
            raise TypeError(f"register_transformer('{name}') decorates a function; received: {factory!r}")
        with _lock:
            _registry[name] = Registration(name, "transformer", factory, returns)
        return factory

    return decorate


def register_estimator(name: str, returns: Returns, *, arrow: bool = False) -> Callable[[Callable[..., Any]], RegisteredEstimator]:
    """Registers a fit function as the Python estimator ``name``.

    The fit function runs in the driver's Python backend (the PySpark driver, or
    the companion of a JVM application) as ``fit(df, **params)``: ``df`` is the
    training DataFrame; the stage's column params (``inputCols``, ``labelCol``,
    ``weightCol``) are passed by name when it declares them, and so are the
    ``functionParams`` it declares. It returns the model state (see
    :mod:`dlbridge.state`: str keys to numpy arrays, bytes or JSON values).

    Decorate the predictor with ``@<fit>.predictor``: ``predictor(state, **params)``
    runs once per Python worker (cached there) and returns the batch function,
    which maps the input columns (pandas Series, in ``inputCols`` order) to a
    Series of type ``returns``.

    Parameters
    ----------
    name : str
        The name the ``function`` param of ``PythonEstimator`` refers to.
    returns : str or callable
        Spark DDL type of the model's output column, or a function of the params
        that returns it.
    arrow : bool
        The batch function takes and returns pyarrow arrays. Defaults to `False`.

    Returns
    -------
    callable
        A decorator that registers the fit function and returns a
        :class:`RegisteredEstimator` (callable like the function).
    """
    _check_name_and_returns("register_estimator", name, returns)

    def decorate(fit: Callable[..., Any]) -> RegisteredEstimator:
        if not callable(fit):
            raise TypeError(f"register_estimator('{name}') decorates a fit function; received: {fit!r}")
        with _lock:
            _registry[name] = Registration(name, "estimator", None, returns, fit=fit, arrow=arrow)
        return RegisteredEstimator(name, fit)

    return decorate


def _update(name: str, **changes: Any) -> None:
    with _lock:
        _registry[name] = replace(_registry[name], **changes)


def _check_name_and_returns(decorator: str, name: str, returns: Returns) -> None:
    if not name or not isinstance(name, str):
        raise ValueError(f"{decorator} needs a non-empty name; received: {name!r}")
    if not callable(returns) and (not returns or not isinstance(returns, str)):
        raise ValueError(
            f"{decorator}('{name}') needs returns= a Spark DDL type such as 'double'; received: {returns!r}")


def call_kwargs(function: Callable[..., Any], params: Dict[str, Any], skip: int = 0) -> Dict[str, Any]:
    """The subset of ``params`` that ``function`` declares (all of them if it takes ``**kwargs``)."""
    if _takes_any(function):
        return dict(params)
    accepted = _accepted(function, skip)
    return {k: v for k, v in params.items() if k in accepted}


def _accepted(function: Callable[..., Any] | None, skip: int) -> set:
    if function is None:
        return set()
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _takes_any(function: Callable[..., Any] | None) -> bool:
    return function is not None and any(
        p.kind is p.VAR_KEYWORD for p in inspect.signature(function).parameters.values())


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
    """The registered transformer and estimator names, sorted."""
    with _lock:
        return sorted(_registry)


def lookup(name: str, kind: str | None = None) -> Registration:
    """The registration for ``name`` (of ``kind``, when given); ``ValueError`` listing the known names if absent."""
    if name in _BUILTIN_MODULES and name not in _registry:
        importlib.import_module(_BUILTIN_MODULES[name])
    with _lock:
        registration = _registry.get(name)
        known = sorted(n for n, r in _registry.items() if kind is None or r.kind == kind)
    what = f"Python {kind}" if kind else "Python stage"
    decorator = f"@dlbridge.register_{kind}" if kind else "@dlbridge.register_transformer or register_estimator"
    if registration is None or (kind is not None and registration.kind != kind):
        found = f" ('{name}' is a {registration.kind})" if registration is not None else ""
        raise ValueError(
            f"No {what} is registered as '{name}'{found}. Registered: {known or 'none'}. "
            f"Fix: register it with {decorator} in a module listed in "
            "spark.dlbridge.python.modules (or imported by your PySpark driver)."
        )
    return registration


def check_params(function: Callable[..., Any], params: Dict[str, Any], what: str, param: str,
                 skip: int = 0) -> Dict[str, Any]:
    """Checks the JSON ``params`` of ``function`` against its signature and returns them.

    ``what`` names the function in messages (e.g. ``"Python transformer 'plus_k'"``);
    ``param`` is the stage param that holds the JSON (e.g. ``"functionParams"``);
    the first ``skip`` parameters (e.g. ``df`` or ``state``) are not params. A
    function taking ``**kwargs`` accepts any param.

    Raises
    ------
    ValueError
        For an unknown or missing param (the message lists the accepted ones).
    TypeError
        For a param whose JSON value does not match the annotation or default.
    """
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    accepted = {p.name: p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters)
    described = ", ".join(_describe(p) for p in accepted.values()) or "none"
    for key in params:
        if key not in accepted and not open_ended:
            raise ValueError(
                f"{what} has no param '{key}'. Accepted params: {described}. Received: {sorted(params)}. "
                f"Fix the JSON in {param}."
            )
    for name, parameter in accepted.items():
        if name not in params and parameter.default is inspect.Parameter.empty:
            fix = (f"Set {name} on the stage (set{name[0].upper()}{name[1:]})." if name in COLUMN_PARAMS
                   else f"Fix the JSON in {param}.")
            raise ValueError(
                f"{what} needs param '{name}' (no default). Accepted params: {described}. "
                f"Received: {sorted(params)}. {fix}"
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
