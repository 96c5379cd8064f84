"""Training quality per mode, exactness of sync averaging, input and model forms (real Spark local[2])."""
from __future__ import annotations

import json

import numpy as np
import pytest

import keras_factories  # noqa: F401 - registers the model factories
from dlbridge.trainer import TrainingOptions, fit, mlp_builder
from trainer_helpers import accuracy, assert_no_leaks, diabetes_frames, digits_frames, port_of, small_model


@pytest.fixture(scope="module")
def digits(spark):
    train, x_test, y_test = digits_frames(spark)
    return train.cache(), x_test, y_test


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hogwild", "async", "sync"])
def test_digits_mlp_reaches_95_percent_in_every_mode(digits, mode):
    train, x_test, y_test = digits
    opts = TrainingOptions(mode=mode, epochs=14, batchSize=32, optimizer="adam",
                           optimizerOptions='{"learning_rate": 0.003}', validationFraction=0.1, seed=1)
    result = fit(train, "features", "label", mlp_builder([128], "classification"), opts)
    assert accuracy(result.model, x_test, y_test) >= 0.95
    assert [h["epoch"] for h in result.history] == list(range(1, 15))
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert {"val_loss", "val_accuracy", "samples_per_sec"} <= set(result.history[-1])
    assert result.summary["mode"] == mode and result.summary["loss"] == "sparse_categorical_crossentropy"
    assert_no_leaks(port_of(result))


@pytest.mark.slow
def test_diabetes_regression_beats_the_mean_predictor(spark):
    train, names, x_test, y_test, y_mean = diabetes_frames(spark)
    opts = TrainingOptions(epochs=30, batchSize=16, optimizerOptions='{"learning_rate": 0.003}')
    result = fit(train, names, "target", mlp_builder([16], "regression"), opts)
    assert result.summary["loss"] == "mse" and result.summary["task"] == "regression"
    mse = float(np.mean((result.model.predict(x_test.astype(np.float32), verbose=0)[:, 0] - y_test) ** 2))
    baseline = float(np.mean((y_test - y_mean) ** 2))
    assert mse < 0.8 * baseline, (mse, baseline)  # R^2 > 0.2 (runs give 0.66-0.70 of baseline)
    assert_no_leaks(port_of(result))


@pytest.mark.parametrize("optimizer, weighted", [("sgd", False), ("adam", True)])
def test_sync_sgd_equals_single_process_full_batch_sgd(spark, optimizer, weighted):
    """Each round's averaged gradient is the full batch's; with Adam the workers' copies of the server's
    optimizer (its moments and step count travel each epoch) follow it as one optimizer would."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(3)
    x = rng.normal(size=(101, 4)).astype(np.float32)  # 101 rows: partitions of unequal size
    y = (np.sin(x).sum(axis=1, keepdims=True) + 0.1 * rng.normal(size=(101, 1))).astype(np.float32)
    w = rng.uniform(0.0, 2.0, size=101).astype(np.float32) if weighted else np.ones(101, np.float32)
    df = spark.createDataFrame([(a.tolist(), float(b), float(c)) for a, b, c in zip(x, y[:, 0], w)], ["x", "y", "w"])
    model = small_model()
    steps, lr = 4, 0.2 if optimizer == "sgd" else 0.05
    opts = TrainingOptions(mode="sync", epochs=steps, batchSize=1000, optimizer=optimizer, loss="mse",
                           optimizerOptions=f'{{"learning_rate": {lr}}}', shuffle=False,
                           weightCol="w" if weighted else "")
    result = fit(df, "x", "y", model, opts)

    reference = keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    reference_optimizer = keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": lr}})
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = keras.losses.MeanSquaredError()(y, reference(x), sample_weight=w)
        grads = tape.gradient(loss, reference.trainable_variables)
        reference_optimizer.apply_gradients(zip(grads, reference.trainable_variables))
    for got, want in zip(result.model.get_weights(), reference.get_weights()):
        assert np.allclose(got, want, rtol=1e-4, atol=1e-5), np.abs(got - want).max()
    assert not np.allclose(result.model.get_weights()[0], model.get_weights()[0], atol=1e-3)
    assert int(result.model.optimizer.iterations.numpy()) == steps
    assert_no_leaks(port_of(result))


def test_batch_normalization_statistics_reach_the_returned_model(digits):
    """Workers' moving mean/variance are merged into the driver's model (they are not served weights)."""
    train, x_test, y_test = digits
    x_train = np.array([row.features.toArray() for row in train.select("features").collect()])
    opts = TrainingOptions(mode="hogwild", epochs=8, batchSize=32, optimizerOptions='{"learning_rate": 0.005}')
    result = fit(train, "features", "label", "bn_mlp", opts)
    norm = result.model.get_layer("input_norm")
    np.testing.assert_allclose(norm.moving_mean.numpy(), x_train.mean(axis=0), atol=0.06)
    np.testing.assert_allclose(norm.moving_variance.numpy(), x_train.var(axis=0), atol=0.05)
    assert accuracy(result.model, x_test, y_test) >= 0.9  # inference uses those statistics


def _one_hot_sparse_frame(spark):
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):
        cls = i % 3
        vec = Vectors.sparse(6, [cls, 3 + cls], [1.0, float(rng.random())])
        rows.append((vec, np.eye(3)[cls].tolist(), cls, [float(v) for v in vec.toArray()]))
    return spark.createDataFrame(rows, ["sparse", "onehot", "index", "array"])


@pytest.mark.parametrize("features, label, expected_loss", [
    ("sparse", "onehot", "categorical_crossentropy"),
    ("array", "index", "sparse_categorical_crossentropy"),
])
def test_input_forms(spark, features, label, expected_loss):
    import keras

    keras.utils.set_random_seed(0)
    df = _one_hot_sparse_frame(spark)
    opts = TrainingOptions(mode="sync", epochs=15, batchSize=16, optimizerOptions='{"learning_rate": 0.03}')
    result = fit(df, features, label, mlp_builder([16], "classification"), opts)
    assert result.summary["loss"] == expected_loss
    x = np.stack(df.toPandas()["array"].to_numpy())
    assert accuracy(result.model, x, np.arange(120) % 3) > 0.9


def test_model_forms_and_save_load_round_trip(spark, tmp_path):
    import keras

    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4))
    df = spark.createDataFrame([(a.tolist(), float(a.sum())) for a in x], ["x", "y"])
    path = str(tmp_path / "start.keras")
    small_model().save(path)
    opts = TrainingOptions(epochs=2, batchSize=16, stepsPerSync=2, mode="async")
    sources = [small_model(), path, small_model().to_json(), "trainer_helpers:small_model"]
    spark.conf.set("spark.dlbridge.modelFactories.allowed", "trainer_helpers:small_model")  # the app trusts it
    try:
        for source in sources:
            result = fit(df, "x", "y", source, opts, model_args={"input_dim": 4})
            assert result.summary["task"] == "regression" and len(result.history) == 2
    finally:
        spark.conf.unset("spark.dlbridge.modelFactories.allowed")
    saved = str(tmp_path / "trained.keras")
    result.model.save(saved)
    loaded = keras.models.load_model(saved, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-6)


def test_bad_inputs_fail_before_training(spark):
    df = spark.createDataFrame([([1.0, 2.0], "a")], ["x", "s"])
    with pytest.raises(ValueError, match="label_col='nope' is not a column"):
        fit(df, "x", "nope", small_model(2))
    with pytest.raises(TypeError, match="Column 's' .*label_col.*Received type string"):
        fit(df, "x", "s", small_model(2))
    with pytest.raises(ValueError, match="numWorkers=3 exceeds the 2 task slots"):
        fit(df, "x", "s", small_model(2), TrainingOptions(mode="sync", numWorkers=3))
    with pytest.raises(ValueError, match="Option optimizer must be"):
        fit(spark.createDataFrame([([1.0, 2.0], 1.5)], ["x", "y"]), "x", "y", small_model(2),
            TrainingOptions(optimizer="nosuch"))
    assert_no_leaks()


def _scalars(directory: str, tag: str) -> list:
    """(step, value) of a scalar in an event-file directory, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(directory, size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    # tf.summary (TF2) writes scalars as tensor events; TensorBoard's scalar plugin reads them so
    tensors = events.Tensors(tag) if tag in events.Tags()["tensors"] else []
    return [(e.step, float(np.asarray(tf_make_ndarray(e.tensor_proto)))) for e in tensors]


def tf_make_ndarray(proto):  # type: ignore[no-untyped-def]
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(proto)


def test_metrics_tensorboard_and_a_learning_rate_schedule_in_one_fit(digits, tmp_path):
    """val_<metric> per epoch, the same numbers in TensorBoard event files (written through the Hadoop
    FS API to a file:// URI), and a server optimizer that follows an ExponentialDecay by its steps.

    ``async`` mode, whose updates are serialised: in ``hogwild`` two pushes applied at the same moment
    can count as one optimizer step (seen once in a full run: 35 steps for 36 pushes)."""
    train, _, _ = digits
    schedule = {"initial_learning_rate": 0.05, "decay_steps": 10, "decay_rate": 0.5}
    board = tmp_path / "board"
    opts = TrainingOptions(mode="async", epochs=2, batchSize=64, optimizer="sgd", seed=1, validationFraction=0.2,
                           optimizerOptions=json.dumps({"learning_rate": {"class_name": "ExponentialDecay",
                                                                          "config": schedule}}),
                           metrics=["auc", "mae"], tensorboardDir=board.as_uri())
    result = fit(train, "features", "label", mlp_builder([16], "classification"), opts)
    assert [sorted(k for k in h if k.startswith("val_")) for h in result.history] == \
        [["val_accuracy", "val_auc", "val_loss", "val_mae"]] * 2
    assert all(0.0 < h["val_auc"] <= 1.0 and 0.0 < h["val_mae"] < 1.0 for h in result.history), result.history
    steps = int(result.model.optimizer.iterations.numpy())
    assert steps == result.summary["pushes"] > 10  # one optimizer step per applied push
    expected_rate = schedule["initial_learning_rate"] * schedule["decay_rate"] ** (steps / schedule["decay_steps"])
    assert float(result.model.optimizer.learning_rate) == pytest.approx(expected_rate, rel=1e-5)
    for split, tag, key in (("train", "epoch_loss", "loss"), ("validation", "epoch_loss", "val_loss"),
                            ("validation", "epoch_auc", "val_auc"), ("validation", "epoch_mae", "val_mae")):
        logged = _scalars(str(board / split), tag)
        assert [s for s, _ in logged] == [1, 2], (split, tag, logged)
        np.testing.assert_allclose([v for _, v in logged], [h[key] for h in result.history], rtol=1e-6)
    assert not list(board.rglob("*.crc"))  # no Hadoop checksum files for TensorBoard to trip on
    assert_no_leaks(port_of(result))


def test_early_stopping_returns_the_best_epochs_weights(digits):
    """After 10 steps (of about 18 per epoch) the schedule turns SGD into gradient ascent (a negative
    rate), so val_loss gets worse: training stops `patience` epochs after the best one and the model
    holds the best epoch's weights."""
    train, x_test, y_test = digits
    ascent = {"class_name": "PiecewiseConstantDecay", "config": {"boundaries": [10], "values": [0.2, -0.05]}}
    opts = TrainingOptions(epochs=10, batchSize=64, optimizer="sgd", seed=1, validationFraction=0.2,
                           optimizerOptions=json.dumps({"learning_rate": ascent}), earlyStoppingPatience=2)
    result = fit(train, "features", "label", mlp_builder([16], "classification"), opts)
    val_loss = [h["val_loss"] for h in result.history]
    best, stopped = result.summary["best_epoch"], result.summary["stopped_epoch"]
    assert best == 1 + int(np.argmin(val_loss)) and stopped == best + 2 == len(val_loss) < 10, val_loss
    # the returned model's loss on held-out rows is the best epoch's level, not the last epoch's
    loss = keras_loss(result.model, x_test, y_test)
    assert abs(loss - val_loss[best - 1]) < abs(loss - val_loss[-1]), (loss, val_loss)
    assert_no_leaks(port_of(result))


def keras_loss(model, x: np.ndarray, y: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    import keras

    predictions = model.predict(x.astype(np.float32), verbose=0)
    return float(np.mean(keras.losses.sparse_categorical_crossentropy(y, predictions)))


def test_the_validation_split_is_disjoint_complete_and_seeded(spark):
    """The split is drawn once per row and cached with it, so the two splits partition the rows; a row's side
    depends on its content and the seed only (not on the source's partitioning or order, nor on numWorkers);
    another seed draws other rows; one frame is cached and then released."""
    from dlbridge.trainer.data import X, prepare

    source = spark.createDataFrame([([float(i), 1.0], float(i % 2)) for i in range(400)], ["f", "label"])
    before = spark.sparkContext._jsc.getPersistentRDDs().size()
    splits = []
    for frame, seed, workers in ((source.repartition(3, "label"), 5, 2), (source.coalesce(1), 5, 3),
                                 (source.repartition(4), 6, 2)):
        data = prepare(frame, "f", "label", TrainingOptions(validationFraction=0.25, seed=seed, numWorkers=workers))
        try:
            train = {row[X][0] for row in data.train.select(X).collect()}
            validation = {row[X][0] for row in data.validation.select(X).collect()}
            assert len(data.cached) == 1 and data.validation_rows == len(validation)
        finally:
            data.unpersist()
        assert not train & validation and len(train | validation) == 400
        assert 60 <= len(validation) <= 140, len(validation)
        splits.append(validation)
    assert splits[0] == splits[1] and splits[0] != splits[2]
    assert spark.sparkContext._jsc.getPersistentRDDs().size() == before
