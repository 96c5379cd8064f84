"""Scala/Python param parity (names, docs, defaults) for every stage in dlbridge.ml."""
from __future__ import annotations

import pytest

import dlbridge.ml
from parity import param_mismatches


def tiny_keras_file(path: str) -> str:
    import keras

    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.save(path)
    return path


def make_stage(name: str, spark, tmp_path):  # type: ignore[no-untyped-def]
    if name == "KerasModel":  # a Model has no public constructor: make one from a file
        return dlbridge.ml.KerasModel.fromFile(tiny_keras_file(str(tmp_path / "tiny.keras")))
    if name == "PythonModel":  # ... or by fitting its estimator
        import centroids  # noqa: F401 (registers 'centroid_classifier' in this driver)

        df = spark.createDataFrame([(0.0, 0.0), (1.0, 1.0)], ["a", "label"])
        return dlbridge.ml.PythonEstimator(function="centroid_classifier", inputCols=["a"], labelCol="label").fit(df)
    return getattr(dlbridge.ml, name)()


@pytest.mark.parametrize("name", dlbridge.ml.__all__)
def test_params_match_scala(spark, name: str, tmp_path) -> None:
    stage = make_stage(name, spark, tmp_path)
    assert param_mismatches(stage) == []


def test_a_drift_is_detected(spark) -> None:
    """The checker itself: a Python default changed on purpose must be reported."""
    stage = dlbridge.ml.PythonTransformer()
    stage._setDefault(functionParams='{"k": 1}')
    assert any("functionParams: default" in m for m in param_mismatches(stage))
