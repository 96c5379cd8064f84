"""Trainer pieces without Spark: options, protocol, server handshake, sync rounds."""
from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time

import numpy as np
import pytest

from dlbridge.trainer import TrainingOptions, mlp_builder
from dlbridge.trainer import protocol as p
from dlbridge.trainer.client import ServerConnection
from trainer_helpers import assert_no_leaks, send_after_challenge, small_model


def test_option_defaults_match_the_contract():
    opts = TrainingOptions()
    assert json.loads(opts.to_json()) == {
        "mode": "hogwild", "epochs": 10, "batchSize": 128, "numWorkers": 2, "optimizer": "adam",
        "optimizerOptions": "{}", "loss": "", "stepsPerSync": 1, "shuffle": True,
        "validationFraction": 0.0, "seed": 0, "verbose": 1, "handleInvalid": "error", "weightCol": "",
        "checkpointDir": "", "checkpointInterval": 10,
        "metrics": [], "earlyStoppingPatience": 0, "tensorboardDir": ""}
    assert TrainingOptions.from_json(opts.to_json()) == opts
    assert TrainingOptions.from_json('{"mode": "sync", "epochs": 3}').epochs == 3


@pytest.mark.parametrize("field, value, expected", [
    ("mode", "elastic", "one of hogwild, async, sync"),
    ("epochs", 0, "an integer >= 1"),
    ("batchSize", True, "an integer >= 1"),
    ("validationFraction", 1.0, "[0, 1)"),
    ("optimizerOptions", "[1]", "JSON object"),
    ("optimizerOptions", "{oops", "JSON object"),
    ("shuffle", "yes", "a boolean"),
    ("handleInvalid", "keep", "one of error, skip"),
    ("checkpointInterval", 0, "an integer >= 1, or -1 to disable checkpoints"),
    ("checkpointDir", None, "a directory path or Hadoop FS URI"),
    ("seed", 2 ** 63, "a 64-bit signed integer"),
    ("weightCol", None, "a column name"),
    ("metrics", "auc", "a list of Keras metric names"),
    ("earlyStoppingPatience", -1, "an integer >= 0"),
    ("tensorboardDir", None, "a directory path"),
])
def test_invalid_options_name_the_option_and_value(field, value, expected):
    with pytest.raises(ValueError) as info:
        TrainingOptions(**{field: value}).validate()
    assert field in str(info.value) and expected in str(info.value) and repr(value) in str(info.value)


def test_from_json_rejects_unknown_keys():
    with pytest.raises(ValueError, match="Unknown training option.*learningRate"):
        TrainingOptions.from_json('{"learningRate": 0.1}')


def test_mlp_builder_shapes_and_errors():
    build = mlp_builder([8, 4], "classification")
    model = build(5, 3)
    assert model.output_shape == (None, 3) and build.task == "classification"
    assert mlp_builder([2], "regression")(5, 1).layers[-1].activation.__name__ == "linear"
    with pytest.raises(ValueError, match="task"):
        mlp_builder([2], "clustering")


def _store(locked: bool = True):
    import keras

    from dlbridge.trainer.store import WeightStore

    return WeightStore(small_model(), keras.optimizers.SGD(learning_rate=1.0), locked=locked)


@pytest.fixture()
def server():
    from dlbridge.trainer.server import ParameterServer

    srv = ParameterServer(_store(), p.new_secret(), "async", 1, "127.0.0.1", timeout=5.0)
    try:
        yield srv
    finally:
        srv.close()
        assert srv.open_sockets() == 0
        assert_no_leaks(srv.port)


def test_pull_push_round_trip_applies_the_gradient(server):
    with ServerConnection("127.0.0.1", server.port, server._secret, server.store.num_params, 5.0) as conn:
        version, view = conn.pull()
        before = view.copy()  # the view is the connection's receive buffer, which the push reuses
        grad = np.full(server.store.num_params, 0.5, dtype=np.float32)
        version2, after = conn.push(grad, samples=3)
    assert version2 == version + 1
    np.testing.assert_allclose(after, before - 0.5, atol=1e-6)  # SGD with learning rate 1


def test_hogwild_adam_applies_concurrent_sparse_gradients_one_at_a_time():
    """Two threads push gradients that are non-zero in 1% of coordinates (a seldom-active feature).

    With a lock-free Adam, an update could read a coordinate's first moment after the other wrote
    it but its second moment before (about zero) and divide by it. The same pushes in a scratch
    script moved single weights by 1,971-4,501 in 2 of 3 runs; the lock-free store failed this test
    in 2 of 3 runs (steps lost).
    """
    import keras

    from dlbridge.trainer.store import WeightStore

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
    store = WeightStore(model, keras.optimizers.Adam(learning_rate=0.005), locked=False)
    steps, start = 400, store.read()[1]

    def push(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            store.apply((rng.normal(size=store.num_params) * (rng.random(store.num_params) < 0.01)).astype(np.float32))

    threads = [threading.Thread(target=push, args=(seed,)) for seed in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    version, weights = store.read()
    assert version == int(store.optimizer.iterations.numpy()) == 2 * steps  # no step merged with another
    # One Adam step moves a weight by at most about 3.2x the learning rate: (1 - beta1) / sqrt(1 - beta2), reached
    # by a coordinate's first non-zero gradient after a long run of zeros.
    assert np.abs(weights - start).max() <= 2 * steps * 0.005 * 3.2


def test_wrong_secret_is_rejected(server):
    with pytest.raises((p.ProtocolError, RuntimeError, ConnectionError)):
        ServerConnection("127.0.0.1", server.port, p.new_secret(), server.store.num_params, 5.0)
    assert server.stats["rejected"] >= 1


def test_oversize_length_is_refused_before_reading(server):
    started = time.monotonic()
    assert send_after_challenge(server.port, p.HEADER.pack(p.AUTH, 2**31)) == b""
    assert time.monotonic() - started < 3  # closed at once, nothing allocated or awaited


def test_unreachable_and_silent_servers_fail_fast():
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="parameter server"):
            ServerConnection("127.0.0.1", port, p.new_secret(), 10, timeout=1.0)
        assert time.monotonic() - started < 5
    with pytest.raises(RuntimeError, match="Cannot reach"):
        ServerConnection("127.0.0.1", port, p.new_secret(), 10, timeout=1.0)


def test_sync_round_averages_by_samples_and_times_out():
    from dlbridge.trainer.sync import SyncAborted, SyncCoordinator

    store = _store()
    coordinator = SyncCoordinator(store, num_workers=2, timeout=1.0)
    _, before = store.read()
    gens = [coordinator.join(i, epoch=1, task_attempt_id=i) for i in range(2)]
    ones = np.ones(store.num_params, np.float32)
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(coordinator.push(0, gens[0], ones, 1, False)))
    thread.start()
    number, update = coordinator.push(1, gens[1], 4 * ones, 3, False)  # mean (1*1 + 3*4) / 4 = 3.25
    thread.join(5)
    np.testing.assert_allclose(update, 3.25)
    assert answers[0][0] == number == 1 and answers[0][1] is update  # one update, the same for every worker
    np.testing.assert_array_equal(store.read()[1], before)  # the workers apply it, then report
    optimizer_state = store.optimizer_state()
    with pytest.raises(ValueError, match="reports round 2; the server completed rounds 1..1"):
        coordinator.report(0, gens[0], 2, before - 3.25, optimizer_state)
    coordinator.report(0, gens[0], 1, before - 3.25, optimizer_state)
    coordinator.report(1, gens[1], 1, before + 7.0, optimizer_state)  # no more rounds than the store holds
    assert store.read()[0] == 1
    np.testing.assert_array_equal(store.read()[1], before - np.float32(3.25))
    started = time.monotonic()
    with pytest.raises(SyncAborted, match="timed out"):
        coordinator.push(0, gens[0], ones, 1, False)
    assert time.monotonic() - started < 3


def test_sync_workers_apply_each_round_themselves_and_the_store_keeps_the_complete_report():
    """Two sync workers against a real server, Adam: each applies the rounds' averaged gradients with its
    own copy of the server's optimizer. With equal partitions both end with the same weights, bit for bit;
    with unequal ones the store takes the report of the worker that took part in every round."""
    import dataclasses

    import keras

    from dlbridge.trainer import models
    from dlbridge.trainer.runtime import runtime_for
    from dlbridge.trainer.server import ParameterServer
    from dlbridge.trainer.store import WeightStore
    from dlbridge.trainer.worker import WorkerSpec, _train

    model = small_model()
    options = TrainingOptions(mode="sync", numWorkers=2, batchSize=4, shuffle=False, optimizer="adam",
                              optimizerOptions='{"learning_rate": 0.05}').validate()
    store = WeightStore(model, keras.optimizers.Adam(learning_rate=0.05))
    secret = p.new_secret()
    server = ParameterServer(store, secret, "sync", 2, "127.0.0.1", timeout=10.0)
    _, initial = store.read()
    try:
        spec = WorkerSpec(fit_id="sync-a", host="127.0.0.1", port=server.port, secret=secret,
                          model_json=models.config_json(model), imports=(), num_params=store.num_params,
                          input_dim=4, label_dim=1, task="regression", loss="mse", from_logits=False,
                          sparse=False, options=options, timeout=10.0)
        specs = [spec, dataclasses.replace(spec, fit_id="sync-b")]  # two runtimes in this one process
        rng = np.random.default_rng(3)
        stats: dict[int, object] = {}

        def epoch(number: int, rows: tuple[int, int]) -> None:
            data = [(rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(n, 1)).astype(np.float32))
                    for n in rows]
            threads = [threading.Thread(target=lambda i=i: stats.update(
                {i: _train(specs[i], number, None, i, iter([data[i]]))})) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)

        epoch(1, (16, 16))
        assert [stats[i].pushes for i in range(2)] == [4, 4]
        version, weights = store.read()
        assert version == 4 and int(store.optimizer.iterations.numpy()) == 4  # one update per round
        assert not np.allclose(weights, initial)
        for i in range(2):  # bit for bit, also the optimizer's moments
            np.testing.assert_array_equal(runtime_for(specs[i]).weights(), weights)
            assert runtime_for(specs[i]).server_copy().optimizer_state() == store.optimizer_state()
        epoch(2, (20, 12))  # starts from the store: the weights and optimizer state of epoch 1's reports
        assert [stats[i].pushes for i in range(2)] == [5, 3]
        assert store.read()[0] == 9 and int(store.optimizer.iterations.numpy()) == 9
        np.testing.assert_array_equal(runtime_for(specs[0]).weights(), store.read()[1])
    finally:
        server.close()


def test_graph_steps_take_exactly_their_signature_so_calls_bind_directly():
    import tensorflow as tf

    from dlbridge.trainer.runtime import _GraphStep

    def step(x, y, w=None):  # as the runtime's steps: w only when the fit has a weightCol
        return tf.reduce_sum(x) * 2.0 + tf.reduce_sum(y) + (0.0 if w is None else tf.reduce_sum(w))

    spec = tf.TensorSpec([None], tf.float32)
    unweighted, weighted = _GraphStep(step, [spec, spec]), _GraphStep(step, [spec, spec, spec])
    assert float(unweighted(np.ones(3), np.ones(2))) == pytest.approx(8.0)
    assert float(weighted(np.ones(3), np.ones(2), np.ones(4))) == pytest.approx(12.0)
    # A traced function with a parameter the signature leaves out (w=None) fails the concrete function's
    # structured binding on every call, formatting the tensors into an error that TensorFlow then drops.
    assert [len(s._concrete.function_type.parameters) for s in (unweighted, weighted)] == [2, 3]


def test_frames_have_the_documented_layout():
    assert p.HEADER.size == 5 and struct.unpack("<BI", p.HEADER.pack(p.PULL, 7)) == (p.PULL, 7)


def test_state_reports_merge_by_samples_and_skip_unusable_ones():
    from dlbridge.trainer.state import merge_reports

    a, b = np.array([1.0, 2.0], "<f4").tobytes(), np.array([3.0, 6.0], "<f4").tobytes()
    merged = merge_reports([(a, 1), (b, 3), (b, 0), (b[:4], 5)], size=2)  # empty worker, wrong size: ignored
    np.testing.assert_allclose(merged, [2.5, 5.0])
    assert merge_reports([(a, 1)], size=0) is None and merge_reports([(a, 0)], size=2) is None


def test_sync_generation_follows_the_stage_attempt():
    from dlbridge.trainer.sync import SyncAborted, SyncCoordinator

    store = _store()
    coordinator = SyncCoordinator(store, num_workers=2, timeout=5.0)
    old = coordinator.join(0, epoch=2, task_attempt_id=10)
    ones = np.ones(store.num_params, np.float32)
    errors: list[str] = []
    straggler = threading.Thread(target=lambda: errors.append(_push_error(coordinator, old, ones)))
    straggler.start()  # blocked in a round that partition 1 of the first attempt never joins
    new = coordinator.join(0, epoch=2, task_attempt_id=13)  # the retried barrier stage: its ids are higher
    straggler.join(5)
    assert new > old and "attempt" in errors[0]  # superseded while waiting, or refused if it came late
    with pytest.raises(SyncAborted, match="straggler of an older attempt"):
        coordinator.join(1, epoch=2, task_attempt_id=9)  # at or below the failed attempt's ids
    with pytest.raises(SyncAborted, match="straggler"):
        coordinator.join(0, epoch=1, task_attempt_id=30)  # an older epoch
    assert coordinator.join(1, epoch=2, task_attempt_id=14) == new  # joins the retried attempt
    assert coordinator.wait_for_all(1, new) is True
    assert coordinator.join(0, epoch=3, task_attempt_id=20) > new  # a later epoch starts afresh


def test_a_retried_sync_attempt_starts_afresh_whichever_partition_joins_first():
    """The failed attempt's partition 0 never joined; its partition 1 was lost (the generation aborted).
    The retry's partition 0 joins first: a new generation, not the aborted one it would fail in."""
    from dlbridge.trainer.sync import SyncAborted, SyncCoordinator

    coordinator = SyncCoordinator(_store(), num_workers=2, timeout=5.0)
    failed = coordinator.join(1, epoch=4, task_attempt_id=11)
    coordinator.worker_lost(1, failed)
    retry = coordinator.join(0, epoch=4, task_attempt_id=13)
    assert retry > failed and coordinator.join(1, epoch=4, task_attempt_id=14) == retry
    assert coordinator.wait_for_all(0, retry) is True
    with pytest.raises(SyncAborted, match="straggler"):
        coordinator.join(1, epoch=4, task_attempt_id=11)  # the failed attempt's task, late


def test_sync_workers_meet_before_training_and_learn_whether_every_input_is_there():
    from dlbridge.trainer.sync import SyncAborted, SyncCoordinator

    coordinator = SyncCoordinator(_store(), num_workers=2, timeout=1.0)
    answers: dict[int, bool] = {}

    def worker(partition: int, present: bool) -> None:
        generation = coordinator.join(partition, epoch=2, task_attempt_id=partition, present=present)
        answers[partition] = coordinator.wait_for_all(partition, generation)

    threads = [threading.Thread(target=worker, args=(0, True))]
    threads[0].start()
    time.sleep(0.2)
    assert not answers  # partition 0 waits for partition 1
    threads.append(threading.Thread(target=worker, args=(1, False)))  # its input files are gone
    threads[1].start()
    for thread in threads:
        thread.join(5)
    assert answers == {0: False, 1: False}  # neither trains: the driver streams the epoch again
    alone = coordinator.join(0, epoch=3, task_attempt_id=5)
    started = time.monotonic()
    with pytest.raises(SyncAborted, match="timed out after 1s waiting for 1 worker\\(s\\) to join"):
        coordinator.wait_for_all(0, alone)
    assert time.monotonic() - started < 3


def _push_error(coordinator, generation: int, values: np.ndarray) -> str:
    from dlbridge.trainer.sync import SyncAborted

    try:
        coordinator.push(0, generation, values, 1, False)
    except SyncAborted as e:
        return str(e)
    return "no error"


# ---- per-epoch options: metrics, early stopping, learning-rate schedules (no Spark) ----

@pytest.mark.parametrize("options, expected", [
    (dict(metrics=["auc", "nope"], validationFraction=0.2),
     "'nope' is not a Keras metric name. Expected names such as accuracy, auc, precision"),
    (dict(metrics=["auc"]), "Option metrics=('auc',) is computed on the validation split, but validationFraction=0.0"),
    (dict(earlyStoppingPatience=2), "Option earlyStoppingPatience=2 is computed on the validation split"),
    (dict(optimizerOptions='{"learning_rate": {"class_name": "os.system", "config": {}}}'),
     "learning_rate must be a number, or {\"class_name\": <one of CosineDecay, CosineDecayRestarts, ExponentialDecay"),
    (dict(optimizerOptions='{"learning_rate": {"class_name": "ExponentialDecay", "config": {"rate": 1}}}'),
     "the learning_rate config does not fit ExponentialDecay"),
])
def test_epoch_options_fail_validation_with_the_fix(options, expected):
    with pytest.raises(ValueError) as info:
        TrainingOptions(**options).validate()
    assert expected in str(info.value), str(info.value)


def test_metric_states_of_partitions_merge_into_the_whole_data_value():
    """Two partitions' metric states, summed, give what one Keras metric gives on all rows."""
    import keras

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40).astype(np.int32)
    logits = rng.normal(size=(40, 3)).astype(np.float32)
    merged = _merged_by_partition(["auc", "accuracy", "mae"], y, logits, sparse=True, from_logits=True)
    probabilities, one_hot = keras.ops.softmax(logits).numpy(), np.eye(3, dtype=np.float32)[y]
    whole = {"val_auc": keras.metrics.AUC(), "val_accuracy": keras.metrics.SparseCategoricalAccuracy(),
             "val_mae": keras.metrics.MeanAbsoluteError()}
    for name, metric in whole.items():
        metric.update_state(y if name == "val_accuracy" else one_hot, probabilities)
        assert merged[name] == pytest.approx(float(metric.result()), abs=1e-6), name


def _merged_by_partition(names, y, outputs, **kwargs):  # type: ignore[no-untyped-def]
    """The metrics of rows 0-14 and 15-39 computed apart, then merged (as from two validation tasks)."""
    from dlbridge.trainer.metrics import MetricSet

    kwargs.update(num_outputs=outputs.shape[1], label_dim=0 if kwargs["sparse"] else y.shape[1])
    parts = []
    for rows in (slice(0, 15), slice(15, 40)):
        metric_set = MetricSet(names, **kwargs)
        metric_set.update(y[rows], outputs[rows])
        parts.append(metric_set.state())
    return MetricSet(names, **kwargs).merge(parts)


def test_regression_metrics_with_lazily_built_state_merge_too():
    """r2_score creates its state on first use: it is built before the first batch, so states line up."""
    import keras

    rng = np.random.default_rng(1)
    y = rng.normal(size=(40, 1)).astype(np.float32)
    predictions = (y + rng.normal(scale=0.5, size=(40, 1))).astype(np.float32)
    merged = _merged_by_partition(["r2_score", "rmse"], y, predictions, sparse=False, from_logits=False)
    r2, rmse = keras.metrics.R2Score(), keras.metrics.RootMeanSquaredError()
    for metric in (r2, rmse):
        metric.update_state(y, predictions)
    assert merged == pytest.approx({"val_r2_score": float(r2.result()), "val_rmse": float(rmse.result())}, abs=1e-5)


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    from dlbridge.trainer.early_stopping import EarlyStopping

    model, stopper = small_model(), EarlyStopping(patience=2)
    seen = {}
    for epoch, val_loss in enumerate([1.0, 0.5, 0.7, 0.6], start=1):
        model.set_weights([w + epoch for w in model.get_weights()])  # each epoch changes the weights
        seen[epoch] = model.get_weights()
        if stopper.update({"epoch": epoch, "val_loss": val_loss}, model):
            break
    assert epoch == 4 and stopper.summary() == {"best_epoch": 2, "stopped_epoch": 4}
    stopper.restore(model, epoch)
    for restored, best in zip(model.get_weights(), seen[2]):
        np.testing.assert_array_equal(restored, best)


def test_checkpoints_are_atomic_unpickled_and_off_with_interval_minus_one(tmp_path):
    import keras

    from dlbridge.trainer.checkpoints import Checkpoints
    from dlbridge.trainer.filesystem import LocalDirectory

    class Objective:
        task, loss = "regression", "mse"

    options = TrainingOptions(checkpointDir=str(tmp_path), checkpointInterval=-1)
    assert Checkpoints.open(None, options, small_model(), Objective) is None  # -1: no checkpoints at all
    model, optimizer = small_model(), keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    checkpoints = Checkpoints.open(None, TrainingOptions(checkpointDir=str(tmp_path), checkpointInterval=2, epochs=3),
                                   model, Objective)
    checkpoints.after_epoch(1, model, optimizer)  # not due
    assert os.listdir(tmp_path) == []
    checkpoints.after_epoch(2, model, optimizer)
    (tmp_path / ".tmp-0123-epoch-000003.npz").write_bytes(b"PK partial")  # a writer killed mid-write
    fresh = small_model(seed=7)
    assert checkpoints.restore(fresh, optimizer) == 2
    for mine, saved in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(mine, saved)
    checkpoints.after_epoch(3, model, optimizer)  # the last epoch; older checkpoint and temporaries removed
    assert os.listdir(tmp_path) == ["epoch-000003.npz"]

    np.savez(tmp_path / "epoch-000004.npz", meta=np.array([{"epoch": 4}], dtype=object))  # needs unpickling
    with pytest.raises(ValueError, match=f"checkpointDir '{tmp_path}': the checkpoint epoch-000004.npz cannot be "
                                         "read .*allow_pickle=False"):
        Checkpoints(LocalDirectory(str(tmp_path)), 1, 5, {}).latest()


def test_the_seed_fixes_the_initial_weights_of_a_built_model_config_and_mlp():
    import random

    from dlbridge.trainer import models, seeding, sources

    config = sources.keras_config(small_model(4, 3).to_json(), "model")

    def build(source, seed):
        with seeding.seeded(seed):
            return [w.copy() for w in models.resolve_model(source, 4, 3).get_weights()]

    state = random.getstate()
    for source in (config, mlp_builder([8], "classification")):
        first, again, other = build(source, 2 ** 40 + 7), build(source, 2 ** 40 + 7), build(source, 7)
        assert all(np.array_equal(a, b) for a, b in zip(first, again))
        assert not all(np.array_equal(a, b) for a, b in zip(first, other))  # the seed's high bits count too
    assert random.getstate() == state  # the caller's own random stream is left as it was


def test_a_users_loss_may_branch_on_tensors_and_leaves_no_generated_source_behind(tmp_path, monkeypatch):
    """Workers' steps run without AutoGraph; the user's loss alone is converted, and its temp file removed."""
    import tempfile

    import tensorflow as tf

    from dlbridge.trainer.objectives import loss_for, pack_loss

    def clipped_error(y_true, y_pred):
        error = tf.reduce_mean(tf.abs(y_true - y_pred), axis=-1)
        if tf.reduce_max(error) > 1.0:  # a Python branch on a tensor: needs AutoGraph in graph mode
            error = tf.minimum(error, 1.0)
        return error

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    loss = loss_for("clipped_error", False, pack_loss(clipped_error))
    step = tf.function(lambda y, p: loss(y, p), autograph=False)
    y_true = np.zeros((2, 3), np.float32)
    assert float(step(y_true, np.full((2, 3), 5.0, np.float32))) == pytest.approx(1.0)
    assert float(step(y_true, np.full((2, 3), 0.5, np.float32))) == pytest.approx(0.5)
    assert list(tmp_path.iterdir()) == []


def test_a_loss_autograph_cannot_convert_runs_as_it_is_and_leaves_no_generated_source_behind(tmp_path, monkeypatch):
    """A loss pickled by value keeps only the globals its body uses: AutoGraph's converted module then fails
    on an annotation naming another (here ``Any``) after writing its source; the loss runs unconverted and
    the file is removed (the anomaly example's loss, shipped with --py-files, left one per Python worker)."""
    import importlib.util
    import sys
    import tempfile

    import tensorflow as tf
    from pyspark import cloudpickle

    from dlbridge.trainer.objectives import loss_for, pack_loss

    source = tmp_path / "by_value_loss.py"
    source.write_text("from typing import Any\n\n\ndef absolute_error(y_true: Any, y_pred: Any) -> Any:\n"
                      "    import keras\n\n    return keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=-1)\n")
    spec = importlib.util.spec_from_file_location("by_value_loss", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "by_value_loss", module)
    cloudpickle.register_pickle_by_value(module)
    try:
        packed = pack_loss(module.absolute_error)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    loss = loss_for("absolute_error", False, packed)
    step = tf.function(lambda y, p: loss(y, p), autograph=False)
    assert float(step(np.zeros((2, 3), np.float32), np.full((2, 3), 0.5, np.float32))) == pytest.approx(0.5)
    assert list(temp.iterdir()) == []
