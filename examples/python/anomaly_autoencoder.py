"""A user's own deep-learning estimator: a Keras autoencoder whose model adds an anomaly score.

The fit function standardises the input columns, builds a small Keras
autoencoder and trains it with dlbridge's parameter server
(:func:`dlbridge.trainer.fit`, ``label_col=None``: the targets are the inputs)
under this module's own loss, :func:`reconstruction_error`. The model state is
the trained ``.keras`` archive, the standardisation and the loss history. The
predictor loads the model once per Python worker (``safe_mode=True``) and
scores each row by its reconstruction error (mean squared error over the
standardised columns): rows unlike the training data score high.

Use it from any language as ``dlbridge.ml.PythonEstimator`` with
``function="anomaly_autoencoder"`` and the numeric ``inputCols`` to learn from:

* PySpark: import this module in the driver (``examples/python/anomaly_pyspark.py``);
* a Scala or Java app: ``spark-submit --py-files anomaly_autoencoder.py
  --conf spark.dlbridge.python.modules=anomaly_autoencoder ...``
  (``examples/scala/dlbridge/examples/AnomalyExample.scala``).
"""

from typing import Any, Callable

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dlbridge import register_estimator


def reconstruction_error(y_true: Any, y_pred: Any) -> Any:
    """The training loss: per-row mean squared error between the inputs and their reconstruction."""
    import keras

    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)


def build_autoencoder(num_features: int, code_size: int, hidden_units: int, seed: int) -> Any:
    """``num_features -> hidden_units -> code_size -> hidden_units -> num_features`` Dense layers (ReLU hidden layers, linear code and output)."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((num_features,)),
        keras.layers.Dense(hidden_units, activation="relu"),
        keras.layers.Dense(code_size, name="code"),
        keras.layers.Dense(hidden_units, activation="relu"),
        keras.layers.Dense(num_features, name="reconstruction"),
    ], name="anomaly_autoencoder")


def _standardisation(df: DataFrame, columns: list) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation (one Spark job); a constant column gets a std of 1."""
    row = df.agg(*[F.mean(c) for c in columns], *[F.stddev_pop(c) for c in columns]).first()
    if row is None or row[0] is None:
        raise ValueError(f"anomaly_autoencoder: the training DataFrame has no rows with inputCols={columns}.")
    mean = np.array([row[i] for i in range(len(columns))], dtype=np.float64)
    std = np.array([row[len(columns) + i] or 0.0 for i in range(len(columns))], dtype=np.float64)
    return mean, np.where(std > 0, std, 1.0)


@register_estimator("anomaly_autoencoder", returns="double")
def anomaly_autoencoder(df: DataFrame, inputCols: list, code_size: int = 2, hidden_units: int = 32,
                        epochs: int = 10, batch_size: int = 32, learning_rate: float = 0.003,
                        num_workers: int = 2, mode: str = "hogwild", seed: int = 0) -> dict:
    """Fit: train the autoencoder on the standardised ``inputCols`` with the parameter server.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        The training rows (mostly normal ones; a few anomalies do little harm).
    inputCols : list of str
        Numeric columns, the stage's ``inputCols``.
    code_size : int
        Units of the bottleneck layer. Defaults to ``2``.
    hidden_units : int
        Units of the two hidden ReLU layers. Defaults to ``32``.
    epochs, batch_size, learning_rate, num_workers, mode, seed
        Passed to :class:`dlbridge.trainer.TrainingOptions` (Adam optimizer).
        Default to ``10``, ``32``, ``0.003``, ``2``, ``"hogwild"`` and ``0``.

    Returns
    -------
    dict
        ``{"model.keras": bytes, "mean": array, "std": array, "history": {"loss": [...], "seconds": [...]}}``.
    """
    from dlbridge.trainer import TrainingOptions, fit

    columns = list(inputCols)
    mean, std = _standardisation(df, columns)
    scaled = df.select(*[((F.col(c) - float(m)) / float(s)).alias(c) for c, m, s in zip(columns, mean, std)])
    options = TrainingOptions(loss=reconstruction_error, epochs=epochs, batchSize=batch_size,
                              optimizer="adam", optimizerOptions=f'{{"learning_rate": {learning_rate}}}',
                              numWorkers=num_workers, mode=mode, seed=seed)
    model = build_autoencoder(len(columns), code_size, hidden_units, seed)
    result = fit(scaled, columns, None, model, options)  # label_col=None: the targets are the inputs
    history = {"loss": [h["loss"] for h in result.history], "seconds": [h["seconds"] for h in result.history]}
    return {"model.keras": result.model_bytes(), "mean": mean, "std": std, "history": history}


@anomaly_autoencoder.predictor
def anomaly_scorer(state: dict) -> Callable[..., pd.Series]:
    """Once per Python worker: load the model (``safe_mode=True``); return the batch scoring function."""
    import keras

    from dlbridge.inference import load_model_bytes

    model = load_model_bytes(state["model.keras"])
    mean, std = state["mean"].astype(np.float32), state["std"].astype(np.float32)

    def score(*columns: pd.Series) -> pd.Series:
        """The reconstruction error of each row (NaN where an input is null)."""
        x = (np.column_stack([c.to_numpy(np.float32, na_value=np.nan) for c in columns]) - mean) / std
        reconstructed = keras.ops.convert_to_numpy(model(x, training=False))
        return pd.Series(np.mean((reconstructed - x) ** 2, axis=1), dtype="float64")

    return score
