"""dlbridge.trainer as a public API with the user's own Keras model and loss (real Spark local[2], real TF).

A tiny autoencoder (``label_col=None``: the targets are the features) learns
8-dimensional rows that lie near a 2-dimensional plane, with a loss function
from a user module, a ``keras.losses.Loss`` instance, and a function pickled by
value; the trainer's checks name what is wrong before any job runs.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from pyspark import cloudpickle

import user_losses
from dlbridge.inference import load_model_bytes
from dlbridge.trainer import TrainingOptions, fit
from trainer_helpers import assert_no_leaks, port_of

DIM = 8


def local_reconstruction_error(y_true, y_pred):
    """A loss defined in this test module, which the executors cannot import."""
    import keras

    return keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=-1)


def autoencoder(seed: int = 0, code: int = 2):
    """8 -> 2 -> 8, the user's own (uncompiled) Keras model."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((DIM,)), keras.layers.Dense(code, name="code"),
                             keras.layers.Dense(DIM, name="reconstruction")], name="user_autoencoder")


@pytest.fixture(scope="module")
def plane(spark):
    """512 rows x = z @ A + noise, with z in R^2: an autoencoder with a 2-unit code can reconstruct them."""
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(512, 2)) @ rng.normal(size=(2, DIM)) + 0.05 * rng.normal(size=(512, DIM)))
    df = spark.createDataFrame([(row.tolist(),) for row in x.astype(np.float64)], ["features"])
    return df.cache(), x.astype(np.float32)


def reconstruction_mse(model, x: np.ndarray) -> float:
    return float(np.mean((model.predict(x, verbose=0) - x) ** 2))


def options(loss, **kwargs) -> TrainingOptions:
    base = dict(loss=loss, epochs=4, batchSize=32, optimizerOptions='{"learning_rate": 0.02}', seed=3, verbose=0)
    return TrainingOptions(**{**base, **kwargs})


def test_autoencoder_with_the_users_loss_function_learns(plane):
    df, x = plane
    net = autoencoder()
    before = reconstruction_mse(net, x)
    result = fit(df, "features", None, net, options(user_losses.reconstruction_error))
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.2 * losses[0], losses
    assert result.summary["loss"] == "user_losses.reconstruction_error" and result.summary["task"] == "regression"
    assert reconstruction_mse(net, x) == before  # the user's model is copied, not trained in place
    after = reconstruction_mse(result.model, x)
    assert after < 0.05 * before and after <= losses[-1], (before, after, losses)  # epoch loss: mean while learning
    reloaded = load_model_bytes(result.model_bytes())  # safe_mode=True, no need for the user's loss module
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-6)
    assert_no_leaks(port_of(result))


def test_a_keras_loss_instance_with_validation(plane):
    import keras

    df, _ = plane
    # 6 epochs: at 4, async fits sometimes sit on a plateau at epochs 3-4 (last / first val_loss 0.49 and
    # 0.51 in 2 of 4 fits, 0.513 in a clean-clone run); at 6, five fits ended at 0.017-0.037.
    result = fit(df, "features", None, autoencoder(1),
                 options(keras.losses.Huber(delta=0.5), mode="async", validationFraction=0.2, epochs=6))
    first, last = result.history[0], result.history[-1]
    assert result.summary["loss"] == "huber_loss"  # Keras' name for Huber()
    assert last["loss"] < 0.5 * first["loss"] and last["val_loss"] < 0.5 * first["val_loss"], result.history
    assert "val_accuracy" not in last


def test_a_loss_the_executors_cannot_import_fails_naming_the_fix_and_by_value_it_trains(plane):
    df, _ = plane
    with pytest.raises(RuntimeError) as info:
        fit(df, "features", None, autoencoder(), options(local_reconstruction_error, epochs=1))
    message = str(info.value)
    assert "test_trainer_user_models.local_reconstruction_error" in message and "--py-files" in message
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # what the backend does for --py-files modules
    try:
        result = fit(df, "features", None, autoencoder(), options(local_reconstruction_error, epochs=2, batchSize=16))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_targets_from_features_check_invalid_rows_and_sizes(spark):
    valid = [([float(i % 5), 1.0, 2.0],) for i in range(40)]
    df = spark.createDataFrame(valid + [([float("nan"), 1.0, 2.0],), (None,)], "features array<double>")
    clean = spark.createDataFrame(valid, "features array<double>")
    with pytest.raises(ValueError, match=r"featuresCol='features': 2 of 42 row\(s\) are null or hold NaN") as info:
        fit(df, "features", None, _dense(3, 3), options(""))
    assert "labelCol" not in str(info.value)
    result = fit(df, "features", None, _dense(3, 3), options("", epochs=1, handleInvalid="skip"))
    assert result.history[0]["samples"] == 40 and result.summary["loss"] == "mse"
    with pytest.raises(ValueError, match=r"features hold 3 values per row but the model outputs 8"):
        fit(clean, "features", None, _dense(3, 8), options(""))
    with pytest.raises(ValueError, match=r"features hold 3 values per row but the model .* takes input of shape \[8\]"):
        fit(clean, "features", None, autoencoder(), options(""))
    with pytest.raises(ValueError, match=r"task='classification' does not fit label_col=None"):
        fit(clean, "features", None, _dense(3, 3), options(""), task="classification")
    assert_no_leaks()


def _dense(inputs: int, outputs: int):
    import keras

    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(outputs)])


def test_bad_losses_fail_on_the_driver_naming_the_option(spark):
    import keras

    df = spark.createDataFrame([([1.0, 2.0, 3.0],)] * 8, ["features"])

    def shape_error(y_true, y_pred):
        return keras.ops.reshape(y_pred, (7,))

    with pytest.raises(TypeError, match=r"received the class Huber. Fix: pass an instance, e.g. loss=Huber\(\)"):
        fit(df, "features", None, _dense(3, 3), options(keras.losses.Huber))
    with pytest.raises(TypeError, match=r"cannot be called with the two arguments \(y_true, y_pred\)"):
        fit(df, "features", None, _dense(3, 3), options(lambda y: y))
    with pytest.raises(ValueError, match=r"Option loss='.*shape_error' failed on the driver on a trial batch"):
        fit(df, "features", None, _dense(3, 3), options(shape_error))
    with pytest.raises(ValueError, match="Option loss must be a Keras loss name"):
        fit(df, "features", None, _dense(3, 3), options(3.5))
    with pytest.raises(ValueError, match="only a Keras loss name can be written as JSON"):
        options(user_losses.reconstruction_error).to_json()
    assert_no_leaks()
