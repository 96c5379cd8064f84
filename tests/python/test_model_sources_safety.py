"""Saved pipelines are data, never code: model factories and configs are granted by the application only."""
from __future__ import annotations

import json
import re
import sys

import pytest
from pyspark.ml import Pipeline
from pyspark.ml.linalg import Vectors

import keras_factories
import model_source_factories  # noqa: F401 - registers tiny_mlp
from dlbridge import register_model_factory
from dlbridge.ml import KerasEstimator
from dlbridge.trainer import TrainingOptions, fit
from dlbridge.trainer.sources import ALLOWED_FACTORIES_CONF, keras_config

QUICK = dict(epochs=1, batchSize=16, numWorkers=1, verbose=0, seed=1)
FIX = (r"register it with @dlbridge.register_model_factory.*spark.dlbridge.python.modules"
       r".*spark.dlbridge.modelFactories.allowed")


@pytest.fixture(scope="module")
def tiny(spark):
    rows = [(Vectors.dense([float(i % 3), float(i % 5), float(i % 2), 1.0]), float(i % 2)) for i in range(32)]
    return spark.createDataFrame(rows, ["features", "label"])


def jobs(spark) -> int:
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup(None))


def test_saved_os_system_estimator_is_refused_at_load_and_fit(spark, tiny, tmp_path) -> None:
    target = tmp_path / "pwned"
    attack = KerasEstimator(modelFactory="os:system", modelFactoryArgs={"command": f"touch {target}"}, **QUICK)
    attack.save(str(tmp_path / "est"))
    Pipeline(stages=[attack]).save(str(tmp_path / "pipeline"))
    with pytest.raises(Exception, match=r"modelFactory 'os:system'.*not listed in spark.dlbridge.modelFactories"
                                        r".allowed.*register_model_factory.*spark.dlbridge.python.modules"):
        KerasEstimator.load(str(tmp_path / "est"))
    with pytest.raises(Exception, match="modelFactory 'os:system'"):
        Pipeline.load(str(tmp_path / "pipeline"))
    before = jobs(spark)  # loading reads metadata with Spark jobs; fitting must run none
    with pytest.raises(Exception, match=r"modelFactory 'os:system' is neither a registered model factory.*"
                                        r"Registered model factories: \[.*'tiny_mlp'.*\]. Fix: " + FIX):
        attack.fit(tiny)
    assert not target.exists()  # os.system never ran
    assert jobs(spark) == before


def test_registered_factory_fits_by_name_and_survives_save_load(spark, tiny, tmp_path) -> None:
    est = KerasEstimator(modelFactory="tiny_mlp", modelFactoryArgs={"hidden": 3}, **QUICK)
    est.save(str(tmp_path / "est"))
    model = KerasEstimator.load(str(tmp_path / "est")).fit(tiny)
    assert model.summary["inputShape"] == [4] and model.summary["outputShape"] == [2]
    assert model.transform(tiny).select("prediction").count() == 32


def malicious_configs() -> dict:
    dense = json.loads(keras_factories.small_mlp(inputs=4, classes=2).to_json())
    dense["config"]["layers"][1]["config"]["activation"] = {
        "module": "marker_on_import", "class_name": "function", "config": "build", "registered_name": "build"}
    return {
        "class 'os.system'": {"module": "os", "class_name": "system", "config": {"command": "touch pwned"}},
        "a Lambda layer": {"module": "keras.layers", "class_name": "Lambda",
                   "config": {"function": {"class_name": "__lambda__", "config": {"value": "x"}}}},
        "function 'marker_on_import.build'": dense,
    }


def test_malicious_model_configs_are_refused_without_import(spark, tiny) -> None:
    """Runs before test_allow_listed_module_function_only, the one test that imports marker_on_import."""
    before = jobs(spark)
    for named, config in malicious_configs().items():
        text = json.dumps(config)
        with pytest.raises(Exception, match="modelConfig is refused: it names " + re.escape(named)):
            KerasEstimator(modelConfig=text, **QUICK).fit(tiny)
        with pytest.raises(ValueError, match="model is refused"):
            fit(tiny, "features", "label", text, TrainingOptions(epochs=1, numWorkers=1))
    assert "marker_on_import" not in sys.modules  # the module named by the config was never imported
    assert jobs(spark) == before


def test_allow_listed_module_function_only(spark, tiny, tmp_path, monkeypatch) -> None:
    marker = tmp_path / "imported"
    monkeypatch.setenv("DLBRIDGE_IMPORT_MARKER", str(marker))
    est = KerasEstimator(modelFactory="marker_on_import:build", **QUICK)
    est.save(str(tmp_path / "est"))
    before = jobs(spark)
    with pytest.raises(Exception, match="modelFactory 'marker_on_import:build' is neither a registered"):
        est.fit(tiny)
    assert jobs(spark) == before
    with pytest.raises(Exception, match="modelFactory 'marker_on_import:build'"):
        KerasEstimator.load(str(tmp_path / "est"))
    assert not marker.exists() and "marker_on_import" not in sys.modules
    spark.conf.set(ALLOWED_FACTORIES_CONF, "other:thing, marker_on_import:build")
    try:
        model = KerasEstimator.load(str(tmp_path / "est")).fit(tiny)
    finally:
        spark.conf.unset(ALLOWED_FACTORIES_CONF)
    assert marker.exists() and model.summary["outputShape"] == [2]


def test_model_config_is_keras_json_only(spark, tiny, tmp_path) -> None:
    for not_json in ("keras_factories:small_mlp", str(tmp_path / "model.keras")):
        with pytest.raises(TypeError, match=r"modelConfig.*Keras model's JSON config.*Fix: for a factory use "
                                            r"modelFactory, for a .keras file use modelFile"):
            KerasEstimator(modelConfig=not_json)
    with pytest.raises(Exception, match="parameter modelConfig expects a Keras model's JSON config"):
        spark.sparkContext._jvm.dlbridge.ml.KerasEstimator().setModelConfig("keras_factories:small_mlp")


def test_registered_keras_custom_objects_pass_the_config_guard(tmp_path) -> None:
    config = keras_factories.fail_once_mlp(str(tmp_path / "m")).to_json()  # FailOnce is registered with Keras
    assert keras_config(config).config["class_name"] == "Functional"


def test_model_factory_args_checked_against_signature(spark, tiny) -> None:
    before = jobs(spark)
    with pytest.raises(Exception, match=r"Model factory 'tiny_mlp' has no param 'hiden'. Accepted params: "
                                        r"inputs: int = 4, classes: int = 2, hidden: int = 4.*modelFactoryArgs"):
        KerasEstimator(modelFactory="tiny_mlp", modelFactoryArgs={"hiden": 3}, **QUICK).fit(tiny)
    with pytest.raises(Exception, match=r"Model factory 'tiny_mlp' param 'hidden' expects int; received '3'"):
        KerasEstimator(modelFactory="tiny_mlp", modelFactoryArgs={"hidden": "3"}, **QUICK).fit(tiny)
    assert jobs(spark) == before


def test_trainer_api_applies_the_same_rules(spark, tiny, tmp_path) -> None:
    target = tmp_path / "pwned"
    with pytest.raises(ValueError, match=r"model 'os:system' is neither a registered model factory.*" + FIX):
        fit(tiny, "features", "label", "os:system", model_args={"command": f"touch {target}"})
    assert not target.exists()
    with pytest.raises(ValueError, match=r"Model factory 'tiny_mlp' has no param 'depth'.*model_args"):
        fit(tiny, "features", "label", "tiny_mlp", model_args={"depth": 2})
    result = fit(tiny, "features", "label", "tiny_mlp", TrainingOptions(epochs=1, numWorkers=1, verbose=0))
    assert result.model.output_shape == (None, 2)


def test_factory_names_cannot_look_like_module_function() -> None:
    with pytest.raises(ValueError, match="no ':'"):
        register_model_factory("os:system")
