"""The digits example in PySpark: train a Keras MLP, evaluate, save, reload, predict.

    python examples/python/digits.py <pipeline dir> [epochs]

(with the dlbridge jar found by ``dlbridge.jar_path()``). The results go to stdout; while it trains,
each epoch prints a progress line on stderr (``verbose=0`` turns them off).
"""
from __future__ import annotations

import os
import sys

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import dlbridge
from dlbridge.ml import KerasEstimator


def digits_csv() -> str:
    """The digits CSV that ships inside scikit-learn."""
    import sklearn.datasets

    return os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", "digits.csv.gz")


def main(directory: str, epochs: int) -> None:
    spark = (SparkSession.builder.master(os.environ.get("SPARK_MASTER", "local[2]"))
             .appName("dlbridge digits (PySpark)").config("spark.jars", dlbridge.jar_path()).getOrCreate())
    try:
        raw = spark.read.option("inferSchema", "true").csv(digits_csv())
        pixels = raw.columns[:64]
        data = raw.select([(F.col(c) / 16.0).alias(c) for c in pixels] + [F.col(raw.columns[64]).cast("double").alias("label")])
        train, test = data.randomSplit([0.8, 0.2], seed=7)
        estimator = KerasEstimator(hiddenLayers=[64], optimizer="adam", optimizerOptions={"learning_rate": 0.005},
                                   epochs=epochs, batchSize=32, mode="hogwild", numWorkers=2, seed=1)
        model = Pipeline(stages=[VectorAssembler(inputCols=pixels, outputCol="features"), estimator]).fit(train)
        evaluator = MulticlassClassificationEvaluator(metricName="accuracy")
        accuracy = evaluator.evaluate(model.transform(test))
        model.write().overwrite().save(directory)
        reloaded = evaluator.evaluate(PipelineModel.load(directory).transform(test))
        losses = " ".join(f"{e['loss']:.3f}" for e in model.stages[-1].summary["history"])
        sys.stdout.write(f"dlbridge digits (PySpark): loss per epoch {losses}\n")
        sys.stdout.write(f"dlbridge digits (PySpark): test accuracy {accuracy:.4f}, after save/load {reloaded:.4f}\n")
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 14)
