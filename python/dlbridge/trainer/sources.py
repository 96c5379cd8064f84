"""Model sources that name code: factories and Keras configs, checked before anything is imported.

A stage (or a saved pipeline) can *name* a model factory; only the running
application can *grant* it, by registering it with
``@dlbridge.register_model_factory`` or by listing its ``module:function`` in
``spark.dlbridge.modelFactories.allowed``. A Keras JSON config is data: it is
scanned for objects that would run or import code (lambdas, ``Lambda`` layers,
classes from modules that are neither Keras nor registered custom objects)
and deserialised in Keras safe mode.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import re
from typing import Any, Callable, Iterator

from dlbridge import registry

ALLOWED_FACTORIES_CONF = "spark.dlbridge.modelFactories.allowed"
MODULES_CONF = "spark.dlbridge.python.modules"
FACTORY_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Keras layers that run or load code; Keras refuses them in safe mode, dlbridge refuses them always.
_CODE_LAYERS = frozenset({"Lambda", "TFSMLayer", "TorchModuleWrapper"})
# Public Keras namespaces whose functions a model config may name.
_MODELING_FUNCTIONS = frozenset({
    "activations", "constraints", "initializers", "losses", "metrics", "ops", "optimizers", "random",
    "regularizers",
})


@dataclasses.dataclass(frozen=True)
class FactorySource:
    """A model factory the application granted, with its checked keyword arguments.

    Attributes
    ----------
    name : str
        The registered name or ``module:function`` as given.
    function : callable
        Returns a ``keras.Model`` when called with ``args``.
    args : dict
        Keyword arguments, checked against the function's signature.
    module : str
        The module executors import for custom objects (the function's own module).
    """

    name: str
    function: Callable[..., Any] = dataclasses.field(repr=False)
    args: dict[str, Any]
    module: str


@dataclasses.dataclass(frozen=True)
class KerasConfig:
    """A Keras model config (the parsed ``model.to_json()``) that passed :func:`keras_config`."""

    config: dict[str, Any] = dataclasses.field(repr=False)


def allowed_factories(df: Any) -> frozenset[str]:
    """The ``module:function`` names in ``spark.dlbridge.modelFactories.allowed`` of ``df``'s session.

    The session's runtime conf (``spark.conf.set``) wins over the SparkConf, as for
    ``spark.dlbridge.python.modules``. Only the running application's conf is read.
    """
    jsession = df._jdf.sparkSession()
    option = jsession.conf().getOption(ALLOWED_FACTORIES_CONF)
    value = option.get() if option.isDefined() else jsession.sparkContext().getConf().get(ALLOWED_FACTORIES_CONF, "")
    return frozenset(name.strip() for name in str(value).split(",") if name.strip())


def resolve_factory(name: str, args: dict[str, Any], allowed: frozenset[str], param: str = "modelFactory",
                    args_param: str = "modelFactoryArgs") -> FactorySource:
    """The granted factory ``name`` with ``args`` checked against its signature.

    A registered name is looked up without importing anything; a ``module:function``
    is imported only when it is listed in ``allowed``.

    Raises
    ------
    ValueError
        If ``name`` is neither registered nor allowed (nothing was imported), or
        ``args`` do not fit the signature; ``TypeError`` for ill-typed args.
    """
    text = name.strip()
    registered = registry.lookup_model_factory(text)
    if registered is not None:
        registry.check_params(registered.function, args, f"Model factory '{text}'", args_param)
        return FactorySource(text, registered.function, dict(args), registered.function.__module__)
    if text not in allowed or not FACTORY_PATTERN.match(text):
        raise ValueError(_not_granted(text, param))
    function = _import_allowed(text, param)
    registry.check_params(function, args, f"Model factory '{text}'", args_param)
    return FactorySource(text, function, dict(args), text.split(":")[0])


def _not_granted(name: str, param: str) -> str:
    known = registry.model_factory_names()
    return (
        f"{param} '{name}' is neither a registered model factory nor listed in {ALLOWED_FACTORIES_CONF}, "
        "so dlbridge neither imports nor calls it (a saved stage can name a factory, never grant it). "
        f"Registered model factories: {known or 'none'}. Fix: register it with "
        f"@dlbridge.register_model_factory(\"name\") in a module listed in {MODULES_CONF} (or imported by "
        f"your PySpark driver) and set {param} to that name, or list the module:function you trust in "
        f"{ALLOWED_FACTORIES_CONF} (SparkConf or spark.conf.set)."
    )


def _import_allowed(name: str, param: str) -> Callable[..., Any]:
    module_name, function_name = name.split(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{param} '{name}' (listed in {ALLOWED_FACTORIES_CONF}) cannot be imported: {e}. "
                         "Fix: make the module importable on the driver and the executors.") from e
    if not callable(function):
        raise ValueError(f"{param} '{name}' names a {type(function).__name__}, not a function returning a "
                         "keras.Model. Fix: point it at the factory function.")
    return function


def keras_config(text: str, param: str = "modelConfig") -> KerasConfig:
    """Parses a Keras JSON config and refuses anything in it that would import or run code.

    Raises
    ------
    ValueError
        If ``text`` is not a JSON object, or the config names a lambda, a code-running
        layer, or a class/function outside Keras that is not a registered custom object.
    """
    try:
        config = json.loads(text)
    except json.JSONDecodeError:
        config = None
    if not isinstance(config, dict):
        raise ValueError(
            f"{param} must be a Keras model's JSON config (a JSON object, as from model.to_json()); "
            f"received: {text[:80]!r}. Fix: for a factory use modelFactory, for a .keras file use modelFile.")
    problem = next(_code_references(config), None)
    if problem is not None:
        raise ValueError(
            f"{param} is refused: it names {problem}, which would import or run code that the application "
            "did not grant (dlbridge deserialises configs in Keras safe mode and never imports modules a "
            "config names). Fix: build such models with a registered model factory, or register custom "
            f"classes with keras.saving.register_keras_serializable in a module listed in {MODULES_CONF}.")
    return KerasConfig(config)


def model_from_config(source: KerasConfig) -> Any:
    """Deserialises a checked config with ``safe_mode=True`` (forced, whatever the global Keras setting)."""
    import keras
    from keras.src.saving.serialization_lib import SafeModeScope  # Keras' own scope; no public setter exists

    with SafeModeScope(True):
        return keras.saving.deserialize_keras_object(source.config, safe_mode=True)


def _code_references(node: Any) -> Iterator[str]:
    """Descriptions of every object in the config that names code outside Keras' modeling API."""
    if isinstance(node, list):
        for item in node:
            yield from _code_references(item)
        return
    if not isinstance(node, dict):
        return
    class_name, module = node.get("class_name"), node.get("module")
    if class_name == "__lambda__":
        yield "a Python lambda"
    elif class_name in _CODE_LAYERS:
        yield f"a {class_name} layer"
    elif isinstance(class_name, str) and isinstance(module, str) and not _is_safe(node, class_name, module):
        yield f"{'function' if class_name == 'function' else 'class'} '{module}.{_object_name(node)}'"
    for value in node.values():
        yield from _code_references(value)


def _object_name(node: dict[str, Any]) -> str:
    return str(node.get("config")) if node.get("class_name") == "function" else str(node.get("class_name"))


def _is_safe(node: dict[str, Any], class_name: str, module: str) -> bool:
    import keras

    if class_name == "function":
        if module == "builtins" or keras.saving.get_registered_object(str(node.get("config"))) is not None:
            return True
        parts = module.split(".")
        return parts[0] == "keras" and len(parts) > 1 and parts[1] in _MODELING_FUNCTIONS
    if module == "keras" or module.startswith("keras."):
        return True
    return keras.saving.get_registered_object(node.get("registered_name") or class_name) is not None
