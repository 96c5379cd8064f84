"""TensorFlow parameter-server training of Keras models on Spark DataFrames.

A parameter server on the driver (one per :func:`fit`, own port, own 256-bit
secret) holds the trainable weights and the optimizer. Each epoch is one Spark
job over the cached, repartitioned input: every task streams its partition in
Arrow batches, computes gradients with ``tf.GradientTape`` and exchanges them
with the server over an HMAC-authenticated binary protocol (raw float32, JSON
for control, nothing unpickled), inside TLS with a pinned per-fit certificate
when Spark's ``spark.network.crypto.enabled`` or ``spark.ssl.enabled`` is on.
The server admits ``4 * numWorkers + 8`` authenticated connections and a few
unauthenticated ones, each with one handshake deadline; ``fit`` rejects a
``numWorkers`` it cannot serve before any Spark job.

Modes: ``hogwild`` applies pushes concurrently without a lock; ``async``
serialises them under a lock; ``sync`` runs a barrier stage in which every
step applies the sample-weighted mean of all workers' pushes. A worker whose
partition runs out declares itself done, so partitions may differ in size.

Known limits: non-trainable weights (e.g. BatchNorm statistics) stay at their
initial values on the server; shuffling is within windows of one Arrow batch
(``spark.sql.execution.arrow.maxRecordsPerBatch`` rows); a retried ``sync``
epoch restarts on the weights reached so far. Importing this package starts
nothing and does not import TensorFlow.

>>> from dlbridge.trainer import TrainingOptions
>>> TrainingOptions(mode="sync", epochs=2).validate().mode
'sync'
"""
from dlbridge.trainer.fit import TrainingResult, fit
from dlbridge.trainer.models import MLPBuilder, mlp_builder
from dlbridge.trainer.options import TrainingOptions

__all__ = ["TrainingOptions", "TrainingResult", "fit", "mlp_builder", "MLPBuilder"]
