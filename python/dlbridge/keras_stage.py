"""The built-in Keras stages as a registered estimator, ``"keras"``, of the one registry.

Scala's ``KerasEstimator`` / ``KerasModel`` reach Python the way every
``PythonEstimator`` does (``PythonBackend.fit`` / ``buildUdf`` / ``loadState``),
with every stage param (set or default, by its Scala name) as the params.

* fit trains with :mod:`dlbridge.trainer` and returns the state
  ``{"model.keras": <Keras v3 archive>, "summary": {history, inputShape, outputShape, resumedFromEpoch}}``
  (plus ``bestEpoch`` and ``stoppedEpoch`` in the summary with ``earlyStoppingPatience``),
  saved by the JVM as ``data/model.keras`` and ``data/summary.json``, the layout
  of every saved KerasModel;
* the loader completes the state of a ``.keras`` file trained elsewhere, or of a
  TensorFlow SavedModel (``saved_model.zip``, run through ``keras.layers.TFSMLayer``,
  see :mod:`dlbridge.inference.saved_model`);
* the predictor loads the model once per Python worker (``safe_mode=True``) and
  maps packed float32 feature rows to the struct of the ``outputs`` fields that
  the JVM stage asks for (its output-column contract, defined in Scala).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any, Dict, List

from pyspark.sql import DataFrame

from dlbridge.inference.arrow_io import OUTPUT_TYPES
from dlbridge.registry import register_estimator

_TRAINING_OPTIONS = (
    "mode", "epochs", "batchSize", "numWorkers", "optimizer", "optimizerOptions", "loss",
    "stepsPerSync", "shuffle", "validationFraction", "seed", "verbose", "handleInvalid", "weightCol",
    "checkpointDir", "checkpointInterval",
    "metrics", "earlyStoppingPatience", "tensorboardDir",  # per-epoch options (KerasEpochParams)
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


def _output_type(params: Dict[str, Any]) -> str:
    """The UDF's struct: the ``outputs`` fields the JVM asked for, typed by ``OUTPUT_TYPES``."""
    return ", ".join(f"{field} {OUTPUT_TYPES[field]}" for field in params.get("outputs", ["prediction"]))


@register_estimator("keras", returns=_output_type, arrow=True)
def fit(df: DataFrame, initialState: Dict[str, bytes] | None = None, **params: Any) -> Dict[str, Any]:
    """Trains with dlbridge.trainer; returns the model (``.keras`` bytes) and its summary.

    ``initialState`` holds the start model's bytes as ``"model.keras"`` when
    ``modelFile`` is set (the JVM reads the file from any Hadoop file system).
    """
    from dlbridge.trainer import TrainingOptions
    from dlbridge.trainer import fit as train

    start = (initialState or {}).get("model.keras")
    source = _model_source(params, start, df)
    options = TrainingOptions(**{name: params[name] for name in _TRAINING_OPTIONS})
    features = list(params["featuresCols"]) or params["featuresCol"]  # the JVM refused both set, before any job
    result = train(df, features, params["labelCol"], source, options=options, task=params["task"])
    summary = {"history": strict_json_values(result.history), **shapes(result.model),
               "resumedFromEpoch": result.summary.get("resumed_from_epoch", 0), **_early_stopping(result)}
    return {"model.keras": model_to_bytes(result.model), "summary": summary}


def _early_stopping(result: Any) -> Dict[str, int]:
    """``bestEpoch`` / ``stoppedEpoch`` of a fit with ``earlyStoppingPatience`` (empty without it)."""
    if "best_epoch" not in result.summary:
        return {}
    return {"bestEpoch": result.summary["best_epoch"], "stoppedEpoch": result.summary["stopped_epoch"]}


def strict_json_values(history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The history with every non-finite float as ``None`` (JSON null), so the reply is strict JSON."""
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in epoch.items()}
            for epoch in history]


@fit.loader
def load(state: Dict[str, Any], source: str | None = None, endpoint: str | None = None,
         **params: Any) -> Dict[str, Any]:
    """The state of a pre-trained ``.keras`` file or SavedModel: its bytes, and its shapes as the summary.

    ``source`` names the file the bytes came from in errors. A SavedModel comes
    as ``saved_model.zip`` (see :mod:`dlbridge.inference.saved_model`); its
    ``endpoint`` is kept in the summary, which the predictor reads.
    """
    from dlbridge.inference import describe_model, saved_model

    if saved_model.ARCHIVE in state:
        if not endpoint:
            raise ValueError(f"{source or 'The SavedModel'}: no endpoint given. Fix: pass the endpoint to "
                             "KerasModel.fromSavedModel (its default is 'serving_default').")
        info = saved_model.describe(state[saved_model.ARCHIVE], endpoint, source or "The SavedModel")
        summary = {"history": [], **info, "savedModelEndpoint": endpoint}
        return {saved_model.ARCHIVE: state[saved_model.ARCHIVE], "summary": summary}
    info = describe_model(state["model.keras"], source=source)
    summary = {"history": [], "inputShape": info["inputShape"], "outputShape": info["outputShape"]}
    return {"model.keras": state["model.keras"], "summary": summary}


@fit.predictor
def predictor(state: Dict[str, Any], **params: Any) -> Any:
    """The batch function of the model: packed float32 features (Arrow binary) in, the outputs struct out."""
    from dlbridge.inference import saved_model
    from dlbridge.inference.model_cache import load_prepared
    from dlbridge.inference.udf import BatchPredictor

    if saved_model.ARCHIVE in state:
        loaded = saved_model.load_prepared(state[saved_model.ARCHIVE], state["summary"]["savedModelEndpoint"])
    else:
        loaded = load_prepared(state["model.keras"])
    return BatchPredictor(loaded, task=params["task"], batch_size=params["inferenceBatchSize"],
                          shape=list(params["inputShape"]) or None, fields=params.get("outputs", ["prediction"]),
                          names=[", ".join(params["featuresCols"]) or params["featuresCol"]])
