"""dlbridge's stages from a Spark Connect client: fit, transform, Pipeline, save/load, errors.

One real Spark Connect server (pyspark's own, on 127.0.0.1 with the dlbridge jar) serves the module;
each test runs a client in its own Python process (this pytest process holds classic sessions) and
asserts on what the client measured. The stages run in the server's driver, which starts its own
companion Python backend for the modules named in its ``spark.dlbridge.python.modules``.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from typing import Any, Dict, Iterator

import pytest

from connect_server import ConnectServer


@pytest.fixture(scope="module")
def server() -> Iterator[ConnectServer]:
    """The module's Spark Connect server; stopped after it, with nothing of it left running."""
    # An ML cache of 1 KB in memory: every model is saved to the driver's local disk when cached and a
    # Keras model is offloaded at once, so each use of it loads it back from there.
    started = ConnectServer(modules="centroids,example_udfs", conf={
        "spark.connect.session.connectML.mlCache.memoryControl.enabled": "true",
        "spark.connect.session.connectML.mlCache.memoryControl.maxInMemorySize": "1024"})
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def directory() -> Iterator[str]:
    """A fresh directory for what the server saves (same machine: the server writes there)."""
    path = tempfile.mkdtemp(prefix="dlbridge-connect-data-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def client(server: ConnectServer, scenario: str, directory: str) -> Dict[str, Any]:
    """Runs the ``scenario`` of connect_client.py in its own process; returns the JSON it printed last."""
    result = json.loads(server.run_client(scenario, directory).strip().splitlines()[-1])
    print(f"Connect client '{scenario}': {json.dumps(result)[:2000]}")  # shown by pytest -s / on failure
    return result


@pytest.mark.slow
def test_keras_pipeline_fits_transforms_saves_and_loads(server: ConnectServer, directory: str) -> None:
    result = client(server, "keras", directory)
    assert result["accuracy"] >= 0.95, result
    assert result["columns"][-3:] == ["features", "prediction", "probability"]
    assert result["model_type"] == "KerasModel"
    assert result["reloaded_stage_types"] == ["VectorAssembler", "KerasModel"]
    assert result["accuracy_after_load"] == pytest.approx(result["accuracy"], abs=1e-12)
    assert result["same_predictions"] and result["max_probability_diff"] < 1e-5
    assert result["reloaded_estimator"] == {"type": "KerasEstimator", "epochs": 14, "hiddenLayers": [64],
                                            "optimizerOptions": {"learning_rate": 0.005}}
    assert result["reloaded_model_epochs"] == 14 and result["saved_history_epochs"] == 14
    # What a Connect client cannot reach says so, and how to get it.
    assert "KerasModel.summary is not available under Spark Connect" in result["summary_error"]
    assert "data/summary.json" in result["summary_error"]
    assert "KerasModel.load(dir)" in result["from_file_error"]
    assert "KerasModel.fromSavedModel(path).write().save(dir)" in result["from_saved_model_error"]


def test_python_stages_in_a_pipeline(server: ConnectServer, directory: str) -> None:
    result = client(server, "python", directory)
    assert result["accuracy"] == 1.0, result
    assert result["columns"] == ["a", "b", "label", "a2", "prediction"]
    assert result["scaled_max_error"] < 1e-12
    assert result["same_after_pipeline_load"] and result["same_after_model_load"]
    assert result["reloaded_stage_types"] == ["PythonTransformer", "PythonModel"]
    assert result["reloaded_pipeline_stages"] == [
        {"type": "PythonTransformer", "function": "polynomial", "functionParams": {"coefficients": [0.0, 2.0]}},
        {"type": "PythonEstimator", "function": "centroid_classifier", "functionParams": {"shrink": 0.0}}]
    assert result["reloaded_model_inputCols"] == ["a2", "b"]
    assert "PythonModel.stateFiles is not available under Spark Connect" in result["state_files_error"]
    # The functions ran in the companion backend that the server's driver started (below the server).
    assert any("dlbridge.backend" in p for p in server.processes()), server.processes()


def test_server_errors_reach_the_client_with_dlbridges_message(server: ConnectServer, directory: str) -> None:
    result = client(server, "errors", directory)
    missing = result["missing_column"]
    assert "input column(s) missing not found; the DataFrame has columns: a, b, label" in missing["message"], missing
    unregistered = result["unregistered_function"]["message"]
    assert "No Python transformer is registered as 'no_such_function'" in unregistered, unregistered
    assert "polynomial" in unregistered  # the message lists what the server's backend registered
    label = result["fit_missing_label"]["message"]
    assert "column(s) nope not found" in label and "Fix: set inputCols/labelCol/weightCol" in label, label
    features = result["keras_missing_features"]["message"]
    assert "pixels" in features, features

