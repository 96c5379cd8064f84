"""Anomaly detection in PySpark with a user's Keras autoencoder as a Spark ML estimator.

    python examples/python/anomaly_pyspark.py <model dir> [epochs]

(with the dlbridge jar found by ``dlbridge.jar_path()``). It generates 2000
rows of 8 correlated features (they lie near a plane) and injects 20 anomalies
(rows with the same per-column spread but no correlation), fits the
``anomaly_autoencoder`` estimator of ``anomaly_autoencoder.py`` (a Keras
autoencoder trained by dlbridge's parameter server) on all of them, saves and
reloads the model, scores every row and prints how well the score separates
the anomalies: the mean score of normal and anomalous rows, the ROC AUC and how
many anomalies are among the 20 highest scores. The Scala app
``AnomalyExample.scala`` does the same from the JVM.
"""
from __future__ import annotations

import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads here or in the Python workers

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import anomaly_autoencoder  # registers the "anomaly_autoencoder" estimator in this driver (it sits next to this script)
import dlbridge
from dlbridge.ml import PythonEstimator, PythonModel

FEATURES = [f"x{j}" for j in range(8)]
ROWS, ANOMALY_EVERY = 2000, 100  # rows with id % 100 == 7 are anomalies: 20 of 2000


def sample(spark: SparkSession) -> DataFrame:
    """Normal rows x_j = cos(j) z1 + sin(j) z2 + noise; anomalies x_j ~ N(0, 1), uncorrelated.

    Seeded Spark expressions over two partitions: AnomalyExample.scala generates the same rows.
    """
    base = spark.range(0, ROWS, 1, 2).select(
        "id", (F.col("id") % ANOMALY_EVERY == 7).alias("injected"), F.randn(11).alias("z1"), F.randn(12).alias("z2"))
    features = [F.when(F.col("injected"), F.randn(200 + j))
                .otherwise(math.cos(j) * F.col("z1") + math.sin(j) * F.col("z2") + 0.1 * F.randn(100 + j)).alias(name)
                for j, name in enumerate(FEATURES)]
    return base.select("id", F.col("injected").cast("double").alias("anomaly"), *features)


def report(scored: DataFrame, what: str) -> None:
    """Print the mean scores, the ROC AUC and the anomalies among the highest scores."""
    means = {r["anomaly"]: r["mean_score"] for r in scored.groupBy("anomaly").agg(F.mean("score").alias("mean_score")).collect()}
    auc = BinaryClassificationEvaluator(rawPredictionCol="score", labelCol="anomaly").evaluate(scored)
    k = ROWS // ANOMALY_EVERY
    found = scored.orderBy(F.desc("score")).limit(k).agg(F.sum("anomaly")).first()[0]
    say(f"{what}: mean score normal {means[0.0]:.4f}, anomalies {means[1.0]:.4f}")
    say(f"{what}: ROC AUC {auc:.4f}, anomalies among the {k} highest scores: {int(found)}/{k}")


def say(line: str) -> None:
    """One line of the example's output, on stdout (Spark and TensorFlow log to stderr)."""
    sys.stdout.write(f"dlbridge anomaly (PySpark): {line}\n")
    sys.stdout.flush()


def main(directory: str, epochs: int) -> None:
    spark = (SparkSession.builder.master(os.environ.get("SPARK_MASTER", "local[2]"))
             .appName("dlbridge anomaly (PySpark)").config("spark.jars", dlbridge.jar_path()).getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    # The executors unpickle the predictor and the loss by reference: ship the module to them.
    spark.sparkContext.addPyFile(anomaly_autoencoder.__file__)
    try:
        data = sample(spark).cache()
        say(f"{data.count()} rows of {len(FEATURES)} features, {int(data.agg(F.sum('anomaly')).first()[0])} anomalies injected")
        estimator = PythonEstimator(function="anomaly_autoencoder", inputCols=FEATURES, outputCol="score",
                                    functionParams={"epochs": epochs, "seed": 1})
        say(f"fitting the autoencoder with the parameter server ({epochs} epochs, 2 workers)")
        started = time.monotonic()
        model = estimator.fit(data)
        model.write().overwrite().save(directory)
        history = spark.read.option("multiLine", "true").json(os.path.join(directory, "data", "history.json")).first()
        say(f"fitted in {time.monotonic() - started:.1f} s; state files {', '.join(model.stateFiles)}")
        say("loss per epoch " + " ".join(f"{loss:.4f}" for loss in history["loss"]))
        report(model.transform(data), "scores")
        report(PythonModel.load(directory).transform(data), "after save/load")
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10)
