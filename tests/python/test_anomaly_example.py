"""The anomaly-detection example runs end to end: a user's Keras autoencoder (examples/python/
anomaly_autoencoder.py), trained by dlbridge's parameter server inside a registered estimator, scores
injected anomalies above the normal rows, from PySpark and from the Scala app (spark-submit), and
gives the same scores after save/load."""
from __future__ import annotations

import os
import re
import sys

from conftest import REPO
from keras_helpers import run, spark_submit

EPOCHS = "6"
RESULT = re.compile(r"(scores|after save/load): ROC AUC (\d\.\d+), anomalies among the (\d+) highest scores: (\d+)/(\d+)")


def check_separation(stdout: str) -> None:
    """Both the fitted and the reloaded model: AUC >= 0.95 and at least 18 of the 20 anomalies on top."""
    found = {what: (float(auc), int(hits), int(k)) for what, auc, _, hits, k in RESULT.findall(stdout)}
    assert set(found) == {"scores", "after save/load"}, stdout[-3000:]
    for what, (auc, hits, k) in found.items():
        assert auc >= 0.95 and hits >= k - 2, (what, auc, hits, k)
    assert found["scores"] == found["after save/load"], found


def test_pyspark_script(tmp_path) -> None:
    stdout = run([sys.executable, os.path.join(REPO, "examples", "python", "anomaly_pyspark.py"),
                  str(tmp_path / "model"), EPOCHS])
    check_separation(stdout)
    assert "state files history.json, mean.npy, model.keras, std.npy" in stdout


def test_scala_app(tmp_path) -> None:
    stdout = spark_submit("dlbridge.examples.AnomalyExample", str(tmp_path / "model"), EPOCHS, options=[
        "--py-files", os.path.join(REPO, "examples", "python", "anomaly_autoencoder.py"),
        "--conf", "spark.dlbridge.python.modules=anomaly_autoencoder",
    ])
    check_separation(stdout)
