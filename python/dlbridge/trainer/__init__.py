"""TensorFlow parameter-server training of Keras models on Spark DataFrames.

A parameter server on the driver holds the weights and the optimizer; Spark
tasks stream their partition, compute gradients with ``tf.GradientTape`` and
exchange them over an authenticated binary protocol. Importing this package
starts nothing and does not import TensorFlow.

>>> from dlbridge.trainer import TrainingOptions
>>> TrainingOptions(mode="sync", epochs=2).validate().mode
'sync'
"""
from dlbridge.trainer.fit import TrainingResult, fit
from dlbridge.trainer.models import MLPBuilder, mlp_builder
from dlbridge.trainer.options import TrainingOptions

__all__ = ["TrainingOptions", "TrainingResult", "fit", "mlp_builder", "MLPBuilder"]
