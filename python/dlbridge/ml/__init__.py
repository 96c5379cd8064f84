"""Spark ML stages backed by Python, as thin wrappers over the Scala ``dlbridge.ml`` classes."""
from dlbridge.ml.keras import KerasEstimator, KerasModel
from dlbridge.ml.python_estimator import PythonEstimator, PythonModel
from dlbridge.ml.python_transformer import PythonTransformer

__all__ = ["KerasEstimator", "KerasModel", "PythonEstimator", "PythonModel", "PythonTransformer"]
