"""KerasEstimator / KerasModel from PySpark: accuracy, model sources, pre-trained models, errors."""
from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pandas as pd
import pytest
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

import keras_factories  # noqa: F401 - registers the model factories
from dlbridge.ml import KerasEstimator, KerasModel
from keras_helpers import digits, progress_epochs

QUICK = dict(epochs=2, batchSize=32, optimizerOptions={"learning_rate": 0.005}, seed=1, verbose=0)


@pytest.fixture(scope="module")
def data(spark):
    return digits(spark)


def accuracy(predictions) -> float:
    return MulticlassClassificationEvaluator(metricName="accuracy").evaluate(predictions)


@pytest.mark.slow
def test_fit_from_pyspark_reaches_95_percent(data) -> None:
    train, test = data
    est = KerasEstimator(hiddenLayers=[64], epochs=14, batchSize=32, optimizer="adam",
                         optimizerOptions={"learning_rate": 0.005}, mode="hogwild", seed=1)
    model = est.fit(train)
    predictions = model.transform(test)
    assert predictions.columns == ["features", "label", "prediction", "probability"]
    assert accuracy(predictions) >= 0.95
    history = model.summary["history"]
    assert len(history) == 14 and history[-1]["loss"] < history[0]["loss"]
    assert model.numFeatures == 64 and model.getEpochs() == 14


def small_keras_model():  # type: ignore[no-untyped-def]
    import keras_factories

    return keras_factories.small_mlp()


@pytest.mark.parametrize("source", ["file", "config", "factory", "mlp"])
def test_each_model_source_trains(data, source, tmp_path) -> None:
    train, test = data
    kwargs: dict = {}
    if source == "file":
        small_keras_model().save(str(tmp_path / "start.keras"))
        kwargs["modelFile"] = str(tmp_path / "start.keras")
    elif source == "config":
        kwargs["modelConfig"] = small_keras_model().to_json()
    elif source == "factory":
        kwargs.update(modelFactory="small_mlp", modelFactoryArgs={"hidden": 24})
    else:
        kwargs["hiddenLayers"] = [16]
    model = KerasEstimator(**kwargs, **QUICK).fit(train)
    out = model.transform(test).select("prediction", "probability").toPandas()
    assert len(out) == test.count()
    assert out["prediction"].between(0, 9).all()
    np.testing.assert_allclose(np.stack([v.toArray() for v in out["probability"]]).sum(axis=1), 1.0, atol=1e-4)
    if source == "factory":
        assert model.summary["inputShape"] == [64]


def test_pretrained_keras_file_becomes_a_model_stage(spark, data, tmp_path) -> None:
    import keras

    _, test = data
    net = small_keras_model()
    path = str(tmp_path / "pretrained.keras")
    net.save(path)
    stage = KerasModel.fromFile(path).setRawOutputCol("raw")
    out = stage.transform(test).select("features", "raw", "prediction").toPandas()
    x = np.stack([v.toArray() for v in out["features"]]).astype("float32")
    expected = np.asarray(keras.ops.convert_to_numpy(net(x, training=False)))
    np.testing.assert_allclose(np.stack(out["raw"]), expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(out["prediction"].to_numpy(), expected.argmax(axis=1))


def physical_plan(df) -> str:
    """The physical plan Spark planned for `df` (AQE's initial plan; the operators are chosen there)."""
    return df._jdf.queryExecution().executedPlan().toString()


def test_only_dlbridge_udfs_get_its_operator_in_the_session(spark, data, tmp_path) -> None:
    _, test = data
    path = str(tmp_path / "model.keras")
    small_keras_model().save(path)
    scored = KerasModel.fromFile(path).transform(test)
    plan = physical_plan(scored)
    assert plan.count("ProjectedArrowEvalPython") == 1 and len(re.findall(r"(?<!Projected)ArrowEvalPython", plan)) == 0, plan

    @pandas_udf("double")
    def twice(x: pd.Series) -> pd.Series:
        return x * 2

    mine = scored.select("prediction", twice("prediction").alias("twice"))
    plan = physical_plan(mine)  # the user's UDF, over rows that hold Vectors, in a session dlbridge planned
    assert plan.count("ProjectedArrowEvalPython") == 1 and len(re.findall(r"(?<!Projected)ArrowEvalPython", plan)) == 1, plan
    rows = mine.collect()
    assert len(rows) == test.count() and all(r.twice == 2 * r.prediction for r in rows)


def test_bad_input_rejected_before_any_job(spark, data) -> None:
    train, test = data
    tracker = spark.sparkContext.statusTracker()
    before = len(tracker.getJobIdsForGroup(None))
    with pytest.raises(Exception, match="featuresCol 'features' must be an ML Vector or array<float|double>; received string"):
        KerasEstimator(**QUICK).fit(train.withColumn("features", F.lit("x")))
    with pytest.raises(Exception, match="labelCol 'nope' not found"):
        KerasEstimator(labelCol="nope", **QUICK).fit(train)
    with pytest.raises(Exception, match="at most one model source"):
        KerasEstimator(modelConfig="{}", modelFactory="a.b:c", **QUICK).fit(train)
    assert len(tracker.getJobIdsForGroup(None)) == before
    with pytest.raises(Exception, match="mode"):
        KerasEstimator(mode="fast").fit(train)
    with pytest.raises(TypeError, match="optimizerOptions"):
        KerasEstimator(optimizerOptions="lr=1")


def test_metrics_early_stopping_and_tensorboard_through_the_stage(spark, data, tmp_path, capfd) -> None:
    """The per-epoch params from PySpark through the Scala stage: val_<metric> in the progress line, in
    model.summary and in the JVM summary's metric(name); early stopping's epochs in the summary;
    TensorBoard files at a plain path (resolved by the default Hadoop file system)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train, _ = data
    tracker = spark.sparkContext.statusTracker()
    before = len(tracker.getJobIdsForGroup(None))
    with pytest.raises(Exception, match="'nope' is not a Keras metric name. Expected names such as accuracy, auc"):
        KerasEstimator(metrics=["auc", "nope"], validationFraction=0.2, **QUICK).fit(train)
    with pytest.raises(Exception, match="earlyStoppingPatience=3 is computed on the validation split, but "
                                        "validationFraction=0.0 holds no rows out. Fix: set validationFraction"):
        KerasEstimator(earlyStoppingPatience=3, **QUICK).fit(train)
    assert len(tracker.getJobIdsForGroup(None)) == before  # refused before any job

    board = str(tmp_path / "board")
    est = KerasEstimator(hiddenLayers=[8], metrics=["auc", "precision"], earlyStoppingPatience=5,
                         tensorboardDir=board, **{**QUICK, "verbose": 1, "validationFraction": 0.2})
    model = est.fit(train)
    console = capfd.readouterr().err
    assert progress_epochs(console, est.uid) == [(1, 2), (2, 2)] and " - val_auc " in console, console[-3000:]
    history = model.summary["history"]
    jvm_summary = model._call_java("summary")
    for name in ("auc", "precision"):
        np.testing.assert_allclose(list(jvm_summary.metric(name)), [h[f"val_{name}"] for h in history], rtol=1e-12)
    with pytest.raises(Exception, match="no metric named 'f1' was recorded; recorded: loss, .*val_auc"):
        jvm_summary.metric("f1")
    assert (model.summary["bestEpoch"], model.summary["stoppedEpoch"]) == (jvm_summary.bestEpoch(), 0)
    assert model.summary["bestEpoch"] in (1, 2)
    events = EventAccumulator(board + "/validation")
    events.Reload()
    assert [e.step for e in events.Tensors("epoch_auc")] == [1, 2]


def test_summary_json_has_shapes(data, capfd) -> None:
    train, _ = data
    model = KerasEstimator(hiddenLayers=[8], **{**QUICK, "epochs": 1}).fit(train)
    assert json.loads(json.dumps(model.summary))["outputShape"] == [10]
    assert "dlbridge fit" not in capfd.readouterr().err  # verbose=0: no progress line


def described_jobs(spark) -> dict:  # type: ignore[no-untyped-def]
    """Job id -> description (None when it has none) of the application's jobs, from Spark's status store
    (what the UI shows)."""
    jobs = spark.sparkContext._jsc.sc().statusStore().jobsList(None).iterator()
    found = {}
    while jobs.hasNext():
        job = jobs.next()
        found[job.jobId()] = job.description().get() if job.description().isDefined() else None
    return found


def job_descriptions(spark) -> list:  # type: ignore[no-untyped-def]
    """The descriptions of the application's described jobs."""
    return [d for d in described_jobs(spark).values() if d is not None]


def test_each_epoch_prints_a_progress_line_and_describes_its_jobs(spark, data, capfd) -> None:
    train, _ = data
    sc = spark.sparkContext
    est = KerasEstimator(hiddenLayers=[8], **{**QUICK, "verbose": 2, "validationFraction": 0.2})
    sc.setJobDescription("the caller's description")
    try:
        est.fit(train)
        assert sc.getLocalProperty("spark.job.description") == "the caller's description"  # restored
    finally:
        sc.setJobDescription(None)  # type: ignore[arg-type]
    console = capfd.readouterr().err
    assert progress_epochs(console, est.uid) == [(1, 2), (2, 2)], console[-3000:]
    assert " - val_loss " in console and " - val_accuracy " in console
    # verbose=2: also the input preparation and the training setup
    assert f"dlbridge fit {est.uid}: input read, checked and cached in " in console, console[-3000:]
    assert f"dlbridge fit {est.uid}: hogwild mode, 2 workers, loss sparse_categorical_crossentropy, " in console
    expected = {f"dlbridge fit {est.uid} {what}" for what in
                ("preparing input", "collecting the validation split", "epochs 1-2/2")}  # validated on the driver
    deadline = time.monotonic() + 10  # the status store follows the listener bus, asynchronously
    while not expected <= set(job_descriptions(spark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert expected <= set(job_descriptions(spark)), job_descriptions(spark)


def test_without_validation_the_epochs_run_as_one_job_and_still_print_each_epoch(spark, data, capfd) -> None:
    train, _ = data
    est = KerasEstimator(hiddenLayers=[8], **{**QUICK, "epochs": 4, "verbose": 1})
    model = est.fit(train)
    console = capfd.readouterr().err
    assert progress_epochs(console, est.uid) == [(k, 4) for k in range(1, 5)], console[-3000:]
    assert [h["epoch"] for h in model.summary["history"]] == [1, 2, 3, 4]
    rows = train.count()
    assert all(h["samples"] == rows and h["seconds"] > 0 for h in model.summary["history"])
    expected = {f"dlbridge fit {est.uid} epochs 1-4/4"}
    deadline = time.monotonic() + 10  # the status store follows the listener bus, asynchronously
    while not expected <= set(job_descriptions(spark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    described = [d for d in job_descriptions(spark) if d.startswith(f"dlbridge fit {est.uid} epoch")]
    assert described == [f"dlbridge fit {est.uid} epochs 1-4/4"], described  # one job for all epochs


def test_a_validation_split_evaluated_on_the_driver_gives_what_its_validation_jobs_give(spark, data,
                                                                                       monkeypatch) -> None:
    """A small validation split is evaluated on the driver, in the fit's one job; one over the driver's budget
    runs a validation job per epoch. Two sync fits with one seed train the same weights, so their val_ metrics
    agree."""
    from dlbridge.trainer import driver_validation

    train, _ = data
    params = {**QUICK, "mode": "sync", "epochs": 3, "validationFraction": 0.25, "metrics": ["auc"]}
    on_driver = KerasEstimator(hiddenLayers=[8], **params)
    driver_history = on_driver.fit(train).summary["history"]
    monkeypatch.setattr(driver_validation, "DRIVER_BYTES", 0)  # every split is over the budget now
    by_jobs = KerasEstimator(hiddenLayers=[8], **params)
    job_history = by_jobs.fit(train).summary["history"]
    for name in ("loss", "val_loss", "val_accuracy", "val_auc"):
        np.testing.assert_allclose([h[name] for h in driver_history], [h[name] for h in job_history], rtol=1e-5,
                                   err_msg=name)
    assert all(0 < h["val_auc"] <= 1 and 0 <= h["val_accuracy"] <= 1 for h in driver_history), driver_history
    described = set(job_descriptions(spark))
    assert f"dlbridge fit {on_driver.uid} epochs 1-3/3" in described, described  # one training job
    assert not any(d.startswith(f"dlbridge fit {on_driver.uid} epoch ") for d in described), described
    assert {f"dlbridge fit {by_jobs.uid} epoch {k}/3" for k in (1, 2, 3)} <= described, described
    # every job from by_jobs' first epoch job to its last is described as an epoch's: its validation jobs too
    prefix = f"dlbridge fit {by_jobs.uid} epoch "
    deadline = time.monotonic() + 10  # the status store follows the listener bus, asynchronously
    while time.monotonic() < deadline and f"{prefix}3/3" not in set(job_descriptions(spark)):
        time.sleep(0.2)
    jobs = described_jobs(spark)
    ids = [i for i, d in jobs.items() if d and d.startswith(prefix)]
    assert all((jobs.get(i) or "").startswith(prefix) for i in range(min(ids), max(ids) + 1)), sorted(jobs.items())


# --- KerasModel.fromSavedModel (issue 11, item 8) ---

def signature_output(directory: str, endpoint: str, x: np.ndarray) -> np.ndarray:
    """What the SavedModel's signature ``endpoint`` returns for ``x``, called directly with TensorFlow."""
    import tensorflow as tf

    signature = tf.saved_model.load(directory).signatures[endpoint]
    (name,) = signature.structured_input_signature[1]
    (output,) = signature(**{name: tf.constant(x)}).values()
    return output.numpy()


def save_linear_module(directory: str, outputs: int) -> None:
    """A tf.Module computing logits ``x @ w + b`` of 64 inputs, saved with one signature, ``predict``."""
    import tensorflow as tf

    class Linear(tf.Module):
        def __init__(self) -> None:
            rng = np.random.default_rng(3)
            self.w = tf.Variable(rng.normal(size=(64, outputs)).astype("float32"))
            self.b = tf.Variable(np.full(outputs, 0.1, "float32"))

        @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="pixels")])
        def __call__(self, pixels):  # type: ignore[no-untyped-def]
            return {"scores": tf.matmul(pixels, self.w) + self.b}

    module = Linear()
    tf.saved_model.save(module, directory, signatures={"predict": module.__call__})


def rows(frame, *columns: str) -> list:  # type: ignore[no-untyped-def]
    """The columns of a collected pandas frame as numpy matrices (Vectors and arrays stacked)."""
    pdf = frame.toPandas()
    return [np.stack([v.toArray() if hasattr(v, "toArray") else v for v in pdf[c]]).astype("float64")
            if c != "prediction" else pdf[c].to_numpy() for c in columns]


def test_saved_model_stage_predicts_its_signature_and_outlives_the_directory(spark, data, tmp_path) -> None:
    import glob
    import shutil
    import tempfile

    _, test = data
    directory = str(tmp_path / "exported")
    small_keras_model().export(directory, verbose=False)  # softmax output: already probabilities
    stage = KerasModel.fromSavedModel(f"file://{directory}").setRawOutputCol("raw")  # endpoint serving_default
    features, raw, prediction, probability = rows(
        stage.transform(test).select("features", "raw", "prediction", "probability"),
        "features", "raw", "prediction", "probability")
    expected = signature_output(directory, "serving_default", features.astype("float32"))
    np.testing.assert_allclose(raw, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(probability, expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(prediction, expected.argmax(axis=1))
    assert stage.numFeatures == 64 and stage.summary["outputShape"] == [10]
    # the driver and the (local) Python workers removed the directories they unpacked the SavedModel into
    assert glob.glob(os.path.join(tempfile.gettempdir(), "dlbridge-savedmodel-*")) == []

    saved = tmp_path / "stage"
    stage.write().save(str(saved))
    shutil.rmtree(directory)
    assert (saved / "data" / "saved_model.zip").is_file()
    loaded = KerasModel.load(str(saved))
    (again,) = rows(loaded.transform(test).select("raw"), "raw")
    np.testing.assert_allclose(again, raw, rtol=0, atol=1e-6)


def test_saved_model_endpoint_task_and_logits(spark, data, tmp_path) -> None:
    _, test = data
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    save_linear_module(one, outputs=1)
    save_linear_module(two, outputs=3)
    regressor = KerasModel.fromSavedModel(one, "predict").setTask("regression").setRawOutputCol("raw")
    features, prediction = rows(regressor.transform(test).select("features", "prediction"), "features", "prediction")
    expected = signature_output(one, "predict", features.astype("float32"))
    np.testing.assert_allclose(prediction, expected[:, 0], rtol=0, atol=1e-5)
    # a classifier ending in logits (no Softmax in its graph) gets softmax applied, as .keras models do
    classifier = KerasModel.fromSavedModel(two, "predict")
    features, prediction, probability = rows(classifier.transform(test).select("features", "prediction", "probability"),
                                             "features", "prediction", "probability")
    logits = signature_output(two, "predict", features.astype("float32"))
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probability, softmax / softmax.sum(axis=1, keepdims=True), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(prediction, logits.argmax(axis=1))
    layer = classifier.kerasModel()  # the TFSMLayer of the stage's SavedModel
    assert type(layer).__name__ == "TFSMLayer"
    np.testing.assert_allclose(next(iter(layer(features[:4].astype("float32")).values())), logits[:4], atol=1e-5)


def test_saved_model_errors_name_the_path_and_list_the_endpoints(spark, tmp_path) -> None:
    directory = str(tmp_path / "module")
    save_linear_module(directory, outputs=1)
    tracker = spark.sparkContext.statusTracker()
    before = len(tracker.getJobIdsForGroup(None))
    with pytest.raises(Exception, match=f"SavedModel '{directory}' has no endpoint 'serve'; its endpoints: predict."):
        KerasModel.fromSavedModel(directory, "serve")
    with pytest.raises(Exception, match=f"'{tmp_path}' is not a TensorFlow SavedModel directory: it holds no "
                                        "saved_model.pb. Fix: pass the directory written by tf.saved_model.save"):
        KerasModel.fromSavedModel(str(tmp_path))
    with pytest.raises(Exception, match=f"SavedModel path '{tmp_path}/none' does not exist"):
        KerasModel.fromSavedModel(str(tmp_path / "none"), "predict")
    assert len(tracker.getJobIdsForGroup(None)) == before


def test_checkpoints_resume_a_fit_and_refuse_another_model(data, tmp_path, capfd) -> None:
    """checkpointDir as a file:// URI (written through the JVM's Hadoop FileSystem): resume, finish, refuse."""
    train, _ = data
    uri = (tmp_path / "checkpoints").as_uri()
    est = KerasEstimator(hiddenLayers=[16], checkpointDir=uri, checkpointInterval=2, **QUICK)
    first = est.fit(train)
    assert first.summary["resumedFromEpoch"] == 0 and len(first.summary["history"]) == 2
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if not p.name.startswith(".")] == ["epoch-000002.npz"]

    resumed = est.setEpochs(3).setVerbose(1).fit(train)  # epoch 3 is not a multiple of 2, but the last one
    assert [h["epoch"] for h in resumed.summary["history"]] == [3]
    assert resumed._call_java("summary").resumedFromEpoch() == 2  # Scala/Java's KerasTrainingSummary
    console = capfd.readouterr().err
    assert f"dlbridge fit {est.uid}: resumed from epoch 2 of the checkpoint in {uri} (1 of 3 epochs left)" in console
    assert progress_epochs(console, est.uid) == [(3, 3)], console[-3000:]

    done = est.setEpochs(2).setVerbose(0).fit(train)  # the checkpoint's epoch 3 >= epochs: returned at once
    assert done.summary["resumedFromEpoch"] == 3 and done.summary["history"] == []
    for mine, theirs in zip(done.kerasModel().get_weights(), resumed.kerasModel().get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(Exception, match=f"checkpointDir '{uri}' holds a checkpoint .epoch-000003.npz, epoch 3. of "
                                        "a different model or training setup: architecture .the layers or their configuration"):
        est.setHiddenLayers([8]).fit(train)
    with pytest.raises(Exception, match="checkpointDir 'nofs://x/y' cannot be opened as a local path or a Hadoop FS "
                                        "URI: .*No FileSystem for scheme"):
        est.setHiddenLayers([16]).setCheckpointDir("nofs://x/y").fit(train)
    with pytest.raises(Exception, match="checkpointInterval given invalid value 0"):
        est.setHiddenLayers([16]).setCheckpointInterval(0).fit(train)  # Scala's validator, before any job


def split_pixels(spark, train):  # type: ignore[no-untyped-def]
    """``train``'s 64 pixels as (Vector of 31, array<float> of 32 from pandas, double), and all 64 as one
    nullable array<float> ``pixels``; row 0 holds a null pixel in ``a`` (and so in ``pixels``)."""
    import pandas as pd

    rows = train.collect()
    x = np.array([r.features.toArray() for r in rows], dtype=np.float32).astype(np.float64).astype(object)
    x[0, 40] = None
    pdf = pd.DataFrame({"id": range(len(rows)), "pixels": [list(r) for r in x], "a": [list(r[31:63]) for r in x],
                        "d": x[:, 63].astype(float), "label": [r.label for r in rows]})
    df = spark.createDataFrame(pdf, "id long, pixels array<float>, a array<float>, d double, label double")
    from pyspark.ml.functions import array_to_vector

    return df.withColumn("v", array_to_vector(F.slice("pixels", 1, 31))).cache()


def test_feature_columns_train_and_predict_as_the_same_data_preassembled(spark, data) -> None:
    df = split_pixels(spark, data[0])
    common = dict(hiddenLayers=[8], mode="sync", numWorkers=2, handleInvalid="skip", rawOutputCol="raw",
                  probabilityCol="", **{**QUICK, "seed": 11, "epochs": 1})
    several = KerasEstimator(featuresCols=["v", "a", "d"], **common).fit(df)
    one = KerasEstimator(featuresCol="pixels", **common).fit(df)
    got = several.transform(df).select("id", "raw").toPandas().sort_values("id")
    expected = one.transform(df).select("id", "raw").toPandas().sort_values("id")
    assert got["id"].tolist() == expected["id"].tolist() == list(range(1, df.count()))  # row 0 skipped
    np.testing.assert_allclose(np.stack(got["raw"]), np.stack(expected["raw"]), rtol=0, atol=1e-6)
    with pytest.raises(Exception) as info:  # handleInvalid reaches each column, and the error names it
        several.setHandleInvalid("error").transform(df).collect()
    assert "featuresCols ['v', 'a', 'd'] holds a row with column 'a' holding a null element" in str(info.value)
    with pytest.raises(Exception) as info:
        KerasEstimator(featuresCol="pixels", featuresCols=["v", "a"]).fit(df)
    assert "featuresCol ('pixels') and featuresCols ['v', 'a'] are both set" in str(info.value)


def test_zero_weights_on_half_the_classes_mean_those_classes_are_never_predicted(data) -> None:
    train, test = data
    weighted = train.withColumn("w", F.when(F.col("label") < 5, 1.0).otherwise(0.0))
    model = KerasEstimator(hiddenLayers=[16], weightCol="w", **{**QUICK, "epochs": 3}).fit(weighted)
    predictions = model.transform(test).select("label", "prediction").toPandas()
    low = predictions[predictions["label"] < 5]
    assert (predictions["label"] >= 5).mean() > 0.4  # half the test rows are of the zero-weight classes
    assert (predictions["prediction"] >= 5).mean() < 0.02, predictions["prediction"].value_counts()
    assert (low["prediction"] == low["label"]).mean() > 0.8


def test_weights_reach_the_validation_loss_and_invalid_weights_are_named(data) -> None:
    train, _ = data
    zero = KerasEstimator(hiddenLayers=[4], weightCol="w", validationFraction=0.25, mode="async", stepsPerSync=2,
                          numWorkers=1, **{**QUICK, "epochs": 1}).fit(train.withColumn("w", F.lit(0)))
    record = zero.summary["history"][0]
    assert record["loss"] == 0.0 and record["val_loss"] == 0.0, record
    negative = train.withColumn("w", F.when(F.col("label") == 3, -1.0).otherwise(1.0))
    with pytest.raises(Exception) as info:
        KerasEstimator(weightCol="w", **QUICK).fit(negative)
    message = str(info.value)
    assert "weightCol='w': " in message and "are null, NaN, +/-inf or negative" in message, message[-2000:]
    assert "handleInvalid='skip'" in message
    skipped = KerasEstimator(hiddenLayers=[4], weightCol="w", handleInvalid="skip", numWorkers=1,
                             **{**QUICK, "epochs": 1}).fit(negative)
    assert skipped.summary["history"][0]["samples"] == negative.filter("w >= 0").count()  # class 3 left out


def test_a_seed_makes_sync_fits_identical_and_each_verbose_level_prints_what_its_doc_says(data, capfd) -> None:
    train, _ = data
    common = dict(hiddenLayers=[8], mode="sync", numWorkers=2, **{**QUICK, "epochs": 1})
    capfd.readouterr()
    fits = []
    for seed, verbose in ((2 ** 62 + 1, 0), (2 ** 62 + 1, 1), (6, 2)):
        est = KerasEstimator(**{**common, "seed": seed, "verbose": verbose})
        fits.append(est.fit(train).kerasModel().get_weights())
        console = capfd.readouterr().err
        epochs = progress_epochs(console, est.uid)
        details = [f"dlbridge fit {est.uid}: input read, checked and cached in ",
                   f"dlbridge fit {est.uid}: sync mode, 2 workers, loss sparse_categorical_crossentropy, "]
        assert epochs == ([] if verbose == 0 else [(1, 1)]), console[-3000:]
        assert [d in console for d in details] == [verbose == 2] * 2, console[-3000:]
        assert verbose or "dlbridge fit" not in console, console[-3000:]
    same, other = fits[0], fits[2]
    assert all(np.array_equal(a, b) for a, b in zip(fits[0], fits[1]))  # exact: every weight array
    assert not any(np.array_equal(a, b) for a, b in zip(same, other))


def test_seed_takes_a_java_long() -> None:
    est = KerasEstimator(seed=2 ** 63 - 1)
    est._transfer_params_to_java()  # what fit does first
    assert est.getSeed() == 2 ** 63 - 1 and est._java_obj.getSeed() == 2 ** 63 - 1
    est.setSeed(42)._transfer_params_to_java()  # a small int reaches the LongParam too
    assert est._java_obj.getSeed() == 42
    with pytest.raises(ValueError, match="seed must fit a 64-bit signed integer"):
        KerasEstimator(seed=2 ** 63)
