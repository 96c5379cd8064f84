"""TensorFlow parameter-server training of Keras models on Spark DataFrames.

This is a public API. A Python user (a PySpark script, or the fit function of
an estimator registered with ``@dlbridge.register_estimator``) calls
:func:`fit` with a DataFrame, the feature and label columns, a Keras model and
:class:`TrainingOptions`, and gets a :class:`TrainingResult`: the trained model
(a ``keras.Model``), the per-epoch history and a summary. The model and the
loss may be the user's own:

* ``model``: a built ``keras.Model`` (Sequential or Functional, compiled or
  not; it is copied, and its compile state is not used), a ``.keras`` path, a
  Keras JSON config, a registered model factory, or a
  ``build(input_dim, num_outputs)`` callable such as :func:`mlp_builder`;
* ``TrainingOptions(loss=...)``: a Keras loss name, a ``keras.losses.Loss``
  instance, or a function ``loss(y_true, y_pred)``. It reaches the executors
  pickled by Spark's cloudpickle, like a UDF: by value when it is defined in
  the driver script or in a ``--py-files`` module of a JVM app's backend, else
  by reference, so its module must be importable on the executors;
* ``label_col=None``: the targets are the features (an autoencoder); the task
  is regression and the default loss ``mse``.

:meth:`TrainingResult.model_bytes` gives the trained model as ``.keras``
bytes (for a registered estimator's state); load them with
:func:`dlbridge.inference.load_model_bytes` (``safe_mode=True``).

How it trains: a parameter server on the driver (one per :func:`fit`, own port,
own 256-bit secret) holds the trainable weights and the optimizer. In the
first epoch, a Spark task per partition of the cached, repartitioned input
streams its partition in Arrow batches (keeping it on its executor's local disk for the
later epochs), computes gradients with ``tf.GradientTape`` and exchanges them
with the server over an HMAC-authenticated binary protocol (raw
float32, JSON for control, nothing unpickled), inside TLS with a pinned
per-fit certificate when Spark's ``spark.network.crypto.enabled`` or
``spark.ssl.enabled`` is on. The server admits ``4 * numWorkers + 8``
authenticated connections and a few unauthenticated ones, each with one
handshake deadline; ``fit`` rejects a ``numWorkers`` it cannot serve before
any Spark job. With a task slot for every worker, all epochs run as one Spark
job whose tasks meet at the server at each epoch's end
(:mod:`dlbridge.trainer.chained`), unless a validation split is too large for
the driver to evaluate (:mod:`dlbridge.trainer.driver_validation`); otherwise
each epoch is a job of its own.

Modes: ``hogwild`` applies gradients one at a time but reads the weights
without a lock, even during an update; ``async`` serialises updates and reads
under one lock; ``sync`` runs a barrier stage in which every
step applies the sample-weighted mean of all workers' pushes: the server
averages and answers each round with that mean, every worker applies it with
its own copy of the server's optimizer, and at the end of an epoch the store
takes the weights and optimizer state of the worker that took part in every
round. A worker whose partition runs out declares itself done, so partitions
may differ in size.

Known limits: non-trainable weights (e.g. BatchNorm statistics) are not served
by the server: each worker updates its own copy, and the returned model gets
their sample-weighted mean after each epoch; shuffling is within
windows of one Arrow batch (``spark.sql.execution.arrow.maxRecordsPerBatch``
rows); a retried ``sync`` epoch restarts on the weights the server holds (the
last epoch's, or a finished worker's report of the failed attempt); a model
with one input and one output tensor only; custom layers must be registered
Keras serializables importable on the executors. Importing this package starts
nothing and does not import TensorFlow.

>>> from dlbridge.trainer import TrainingOptions
>>> TrainingOptions(mode="sync", epochs=2).validate().mode
'sync'
"""
from dlbridge.trainer.fit import TrainingResult, fit
from dlbridge.trainer.models import MLPBuilder, mlp_builder
from dlbridge.trainer.options import LossSpec, TrainingOptions

__all__ = ["fit", "TrainingOptions", "TrainingResult", "LossSpec", "mlp_builder", "MLPBuilder"]
