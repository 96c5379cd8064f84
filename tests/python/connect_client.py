"""A Spark Connect client of dlbridge's stages, run by the tests as its own process.

    SPARK_REMOTE=sc://... python connect_client.py <scenario> <server-side directory>

Scenarios: ``keras`` (digits: fit a Pipeline with a KerasEstimator, transform, save/load),
``python`` (PythonTransformer + PythonEstimator in a Pipeline), ``errors`` (server errors as the
client sees them). Each prints one JSON object of what it measured as its last stdout line; the
test asserts on it. The client holds no JVM: every stage runs in the server's driver.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Dict, List

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dlbridge.ml import KerasEstimator, KerasModel, PythonEstimator, PythonModel, PythonTransformer


def digits(spark: SparkSession) -> tuple[DataFrame, DataFrame, List[str]]:
    """The digits CSV shipped in scikit-learn (read by the server), pixels scaled to [0, 1], split 80/20."""
    import sklearn.datasets

    csv = os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", "digits.csv.gz")
    raw = spark.read.option("inferSchema", "true").csv(csv)
    pixels = raw.columns[:64]
    data = raw.select([(F.col(c) / 16.0).alias(c) for c in pixels] + [F.col(raw.columns[64]).cast("double").alias("label")])
    train, test = data.randomSplit([0.8, 0.2], seed=7)
    return train, test, pixels


def rows(df: DataFrame, *columns: str) -> List[List[Any]]:
    """``columns`` of every row (ML vectors as lists), sorted (DataFrames carry no order)."""
    return sorted([[v.toArray().tolist() if hasattr(v, "toArray") else v for v in r]
                   for r in df.select(*columns).collect()])


def not_implemented(call: Callable[[], Any]) -> str:
    """The message of the NotImplementedError ``call`` raises ('' if it raises none)."""
    try:
        call()
    except NotImplementedError as e:
        return str(e)
    return ""


def keras(spark: SparkSession, directory: str) -> Dict[str, Any]:
    train, test, pixels = digits(spark)
    estimator = KerasEstimator(hiddenLayers=[64], epochs=14, batchSize=32, optimizer="adam",
                               optimizerOptions={"learning_rate": 0.005}, mode="hogwild", seed=1)
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=pixels, outputCol="features"), estimator])
    started = time.monotonic()
    model = pipeline.fit(train)
    fit_seconds = time.monotonic() - started
    evaluator = MulticlassClassificationEvaluator(metricName="accuracy")
    predictions = model.transform(test)
    accuracy = evaluator.evaluate(predictions)
    pipeline.write().overwrite().save(f"{directory}/pipeline")
    model.write().overwrite().save(f"{directory}/model")
    reloaded_pipeline = Pipeline.load(f"{directory}/pipeline")
    reloaded = PipelineModel.load(f"{directory}/model")
    keras_model = model.stages[-1]
    summary_file = f"{directory}/model/stages/1_{keras_model.uid}/data/summary.json"
    history = spark.read.json(summary_file, multiLine=True).select(F.size("history")).first()[0]
    before = rows(predictions, "label", "prediction", "probability")
    after = rows(reloaded.transform(test), "label", "prediction", "probability")
    return {
        "fit_seconds": fit_seconds,
        "accuracy": accuracy,
        "accuracy_after_load": evaluator.evaluate(reloaded.transform(test)),
        "columns": predictions.columns,
        "same_predictions": [r[:2] for r in before] == [r[:2] for r in after],
        "max_probability_diff": max(abs(a - b) for x, y in zip(before, after) for a, b in zip(x[2], y[2])),
        "model_type": type(keras_model).__name__,
        "reloaded_stage_types": [type(s).__name__ for s in reloaded.stages],
        "reloaded_estimator": {"type": type(reloaded_pipeline.getStages()[1]).__name__,
                               "epochs": reloaded_pipeline.getStages()[1].getEpochs(),
                               "hiddenLayers": reloaded_pipeline.getStages()[1].getHiddenLayers(),
                               "optimizerOptions": json.loads(reloaded_pipeline.getStages()[1].getOptimizerOptions())},
        "reloaded_model_epochs": reloaded.stages[-1].getEpochs(),
        "saved_history_epochs": history,
        "summary_error": not_implemented(lambda: keras_model.summary),
        "from_file_error": not_implemented(lambda: KerasModel.fromFile(f"{directory}/none.keras")),
        "from_saved_model_error": not_implemented(lambda: KerasModel.fromSavedModel(f"{directory}/none")),
    }


def clusters(spark: SparkSession, n: int, offset: int) -> DataFrame:
    """Two well-separated 2-D classes: label 0 around (0, 0), label 1 around (4, 4)."""
    points = [(float((i * 7 + offset) % 10) / 10, float((i * 3 + offset) % 10) / 10, i % 2) for i in range(n)]
    return spark.createDataFrame([(a + 4 * k, b + 4 * k, float(k)) for a, b, k in points], "a double, b double, label double")


def python_stages(spark: SparkSession, directory: str) -> Dict[str, Any]:
    train, test = clusters(spark, 200, 0), clusters(spark, 60, 5)
    scale = PythonTransformer(function="polynomial", functionParams={"coefficients": [0.0, 2.0]},
                              inputCol="a", outputCol="a2")
    estimator = PythonEstimator(function="centroid_classifier", functionParams={"shrink": 0.0},
                                inputCols=["a2", "b"], labelCol="label", outputCol="prediction")
    pipeline = Pipeline(stages=[scale, estimator])
    model = pipeline.fit(train)
    predictions = model.transform(test)
    pipeline.write().overwrite().save(f"{directory}/pipeline")
    model.write().overwrite().save(f"{directory}/model")
    scale.write().overwrite().save(f"{directory}/transformer")
    model.stages[-1].write().overwrite().save(f"{directory}/python-model")
    reloaded_pipeline = Pipeline.load(f"{directory}/pipeline")
    reloaded = PipelineModel.load(f"{directory}/model")
    reloaded_model = PythonModel.load(f"{directory}/python-model")
    scaled = rows(PythonTransformer.load(f"{directory}/transformer").transform(test), "a", "a2")
    evaluator = MulticlassClassificationEvaluator(metricName="accuracy")
    return {
        "accuracy": evaluator.evaluate(predictions),
        "columns": predictions.columns,
        "scaled_max_error": max(abs(a2 - 2 * a) for a, a2 in scaled),
        "same_after_pipeline_load": rows(predictions, "a", "b", "prediction")
        == rows(reloaded.transform(test), "a", "b", "prediction"),
        "same_after_model_load": rows(model.stages[-1].transform(model.stages[0].transform(test)), "a", "b", "prediction")
        == rows(reloaded_model.transform(model.stages[0].transform(test)), "a", "b", "prediction"),
        "reloaded_stage_types": [type(s).__name__ for s in reloaded.stages],
        "reloaded_pipeline_stages": [{"type": type(s).__name__, "function": s.getFunction(),
                                      "functionParams": json.loads(s.getFunctionParams())}
                                     for s in reloaded_pipeline.getStages()],
        "reloaded_model_inputCols": reloaded_model.getInputCols(),
        "state_files_error": not_implemented(lambda: model.stages[-1].stateFiles),
    }


def server_error(action: Callable[[], Any]) -> Dict[str, str]:
    """The type and message of the exception ``action`` raises on the client."""
    try:
        action()
    except Exception as e:  # noqa: BLE001 - the test inspects whatever the client raised
        return {"type": type(e).__name__, "message": str(e)}
    return {"type": "", "message": ""}


def errors(spark: SparkSession, directory: str) -> Dict[str, Any]:
    df = clusters(spark, 20, 0)
    return {
        "missing_column": server_error(lambda: PythonTransformer(
            function="polynomial", inputCol="missing", outputCol="y").transform(df).collect()),
        "unregistered_function": server_error(lambda: PythonTransformer(
            function="no_such_function", inputCol="a", outputCol="y").transform(df).collect()),
        "fit_missing_label": server_error(lambda: PythonEstimator(
            function="centroid_classifier", inputCols=["a", "b"], labelCol="nope").fit(df)),
        "keras_missing_features": server_error(lambda: KerasEstimator(featuresCol="pixels", epochs=1).fit(df)),
    }


SCENARIOS: Dict[str, Callable[[SparkSession, str], Dict[str, Any]]] = {
    "keras": keras, "python": python_stages, "errors": errors}


def main(scenario: str, directory: str) -> None:
    spark = SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
    try:
        result = SCENARIOS[scenario](spark, directory)
    finally:
        spark.stop()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
