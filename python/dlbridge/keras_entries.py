"""Backend entries behind the Scala ``KerasEstimator`` / ``KerasModel`` (``PythonBackend.invoke``).

Each entry receives the stage's params as a dict (every param, set or
default, by its Scala name) and JVM handles; it returns JSON or a JVM object.
Model bytes cross the bridge as the Keras v3 ``.keras`` archive; loading
always uses ``safe_mode=True``.
"""
from __future__ import annotations

import base64
import json
import math
import os
import tempfile
from typing import Any, Dict, List

from pyspark.sql import DataFrame, SparkSession

from dlbridge.backend.backend import register_entry

_TRAINING_OPTIONS = (
    "mode", "epochs", "batchSize", "numWorkers", "optimizer", "optimizerOptions", "loss",
    "stepsPerSync", "shuffle", "validationFraction", "seed", "verbose", "handleInvalid",
)


def model_to_bytes(model: Any) -> bytes:
    """The ``.keras`` archive of ``model``."""
    fd, path = tempfile.mkstemp(suffix=".keras")
    os.close(fd)
    try:
        model.save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.remove(path)


def shapes(model: Any) -> Dict[str, List[int]]:
    """Input and output shapes without the batch dimension."""
    return {
        "inputShape": [int(d) for d in model.inputs[0].shape[1:]],
        "outputShape": [int(d) for d in model.outputs[0].shape[1:]],
    }


def _model_source(params: Dict[str, Any], start_bytes: Any, df: DataFrame) -> Any:
    """The model source; a factory or config is checked here, before any import or Spark job."""
    from dlbridge.inference import load_model_bytes
    from dlbridge.trainer import mlp_builder, sources

    if start_bytes is not None:
        return load_model_bytes(bytes(start_bytes), source=f"modelFile '{params['modelFile']}'")
    if params["modelConfig"]:
        return sources.keras_config(params["modelConfig"], "modelConfig")
    if params["modelFactory"]:
        allowed = sources.allowed_factories(df)
        return sources.resolve_factory(params["modelFactory"], json.loads(params["modelFactoryArgs"]), allowed)
    return mlp_builder(list(params["hiddenLayers"]), params["task"])


@register_entry("keras.fit")
def fit(spark: SparkSession, params: Dict[str, Any], handles: List[Any]) -> str:
    """Trains with dlbridge.trainer; returns the model (base64 .keras), history and shapes as JSON.

    ``handles`` are the DataFrame, the start model's bytes (or None) and, optionally, the name
    under which the cached input is registered as temp views (see ``dlbridge.trainer.input_cache``).
    """
    from dlbridge.trainer import TrainingOptions
    from dlbridge.trainer import fit as train
    from dlbridge.trainer.input_cache import named_views

    df = DataFrame(handles[0], spark)
    source = _model_source(params, handles[1] if len(handles) > 1 else None, df)
    options = TrainingOptions(**{name: params[name] for name in _TRAINING_OPTIONS})
    with named_views(handles[2] if len(handles) > 2 else None):  # the JVM drops these views after the fit
        result = train(df, params["featuresCol"], params["labelCol"], source, options=options,
                       task=params["task"])
    reply = {"history": strict_json_values(result.history), **shapes(result.model)}
    reply["modelBase64"] = base64.b64encode(model_to_bytes(result.model)).decode("ascii")
    return json.dumps(reply, allow_nan=False)


def strict_json_values(history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The history with every non-finite float as ``None`` (JSON null), so the reply is strict JSON."""
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in epoch.items()}
            for epoch in history]


@register_entry("keras.describe")
def describe(spark: SparkSession, params: Dict[str, Any], handles: List[Any]) -> str:
    """Shapes of a pre-trained model given as ``.keras`` bytes (no history).

    ``params["source"]``, when given, names the file the bytes came from in errors.
    """
    from dlbridge.inference import describe_model

    info = describe_model(bytes(handles[0]), source=params.get("source"))
    return json.dumps({"history": [], "inputShape": info["inputShape"], "outputShape": info["outputShape"]})


@register_entry("keras.udf")
def udf(spark: SparkSession, params: Dict[str, Any], handles: List[Any]) -> Any:
    """The Arrow UDF that runs the model; returns the JVM UserDefinedPythonFunction."""
    from dlbridge.inference import build_keras_udf
    from dlbridge.inference.model_cache import configured_cache_size

    outputs = ["prediction"]
    if params["task"] == "classification" and params["probabilityCol"]:
        outputs.append("probability")
    if params["rawOutputCol"]:
        outputs.append("raw")
    pandas_udf = build_keras_udf(
        bytes(handles[0]), task=params["task"], batch_size=params["inferenceBatchSize"],
        input_shape=list(params["inputShape"]) or None, outputs=tuple(outputs), num_input_cols=1,
        model_cache_size=configured_cache_size(spark),
    )
    return pandas_udf._unwrapped._judf
