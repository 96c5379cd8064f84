"""``KerasEstimator`` / ``KerasModel``: PySpark wrappers over the Scala stages of the same names."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Union

from pyspark import keyword_only
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import JavaMLReadable, JavaMLWritable
from pyspark.ml.wrapper import JavaEstimator, JavaModel
from pyspark.sql import DataFrame, SparkSession

from dlbridge.ml.wrapper import ensure_driver_backend, require_classic, to_json_object

__all__ = ["KerasEstimator", "KerasModel"]

_S, _I, _F, _B, _LI = (TypeConverters.toString, TypeConverters.toInt, TypeConverters.toFloat,
                       TypeConverters.toBoolean, TypeConverters.toListInt)


def _param(name: str, doc: str, converter: Any) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=converter)


def _keras_config(value: Any) -> str:
    """Type converter of ``modelConfig``: empty, or a Keras JSON config (a JSON object string or a dict)."""
    if value == "":
        return ""
    try:
        return to_json_object(value)
    except TypeError as e:
        raise TypeError(f"Expected a Keras model's JSON config (a JSON object, as from model.to_json()); "
                        f"received: {str(value)[:80]!r}. Fix: for a factory use modelFactory, for a .keras "
                        "file use modelFile.") from e


def _to_long(value: Any) -> int:
    """Type converter of ``seed``: an integer that fits a Java ``long`` (Spark's ``HasSeed`` is a ``LongParam``)."""
    number = TypeConverters.toInt(value)
    if not -2 ** 63 <= number < 2 ** 63:
        raise ValueError(f"seed must fit a 64-bit signed integer (a Java long), -2**63 .. 2**63-1. "
                         f"Received: seed={value!r}. Fix: reduce it, e.g. seed % 2**63.")
    return number


class _KerasParams(Params):
    """Params of the Keras stages, mirroring Scala's ``dlbridge.ml.KerasParams`` (names, docs, defaults)."""

    featuresCol = _param("featuresCol", "features column name", _S)
    labelCol = _param("labelCol", "label column name", _S)
    predictionCol = _param("predictionCol", "prediction column name", _S)
    probabilityCol = _param("probabilityCol", "column for the class-probability vector (classification); "
                            "empty disables it (default: probability)", _S)
    rawOutputCol = _param("rawOutputCol", "column for the model's raw output as array<float>; "
                          "empty disables it (default: empty)", _S)
    modelFile = _param("modelFile", "path of a Keras .keras file to train or use (default: empty)", _S)
    modelConfig = _param("modelConfig", "JSON config of a Keras model, as from model.to_json(): a JSON object "
                         "only, deserialised in Keras safe mode; lambdas, Lambda layers and classes outside Keras "
                         "that are not registered custom objects are refused (default: empty)", _keras_config)
    modelFactory = _param("modelFactory", "name of a model factory registered with "
                          "@dlbridge.register_model_factory, or a module:function listed in "
                          "spark.dlbridge.modelFactories.allowed; called with modelFactoryArgs, it returns a "
                          "Keras model (default: empty)", _S)
    modelFactoryArgs = _param("modelFactoryArgs", "keyword arguments of modelFactory, as a JSON object, checked "
                              "against its signature before any job (default: {})", to_json_object)
    hiddenLayers = _param("hiddenLayers", "hidden layer sizes of the built-in MLP used when no model source "
                          "is set (default: [64])", _LI)
    task = _param("task", "classification or regression (default: classification)", _S)
    mode = _param("mode", "training mode: hogwild, async or sync (default: hogwild)", _S)
    epochs = _param("epochs", "passes over the training data (default: 10)", _I)
    batchSize = _param("batchSize", "mini-batch size of each worker step (default: 128)", _I)
    numWorkers = _param("numWorkers", "data-parallel workers (partitions) used for training (default: 2)", _I)
    optimizer = _param("optimizer", "Keras optimizer name, e.g. adam, sgd, rmsprop (default: adam)", _S)
    optimizerOptions = _param("optimizerOptions", "optimizer options as a JSON object, e.g. "
                              "{\"learning_rate\": 0.001}; learning_rate may be a Keras schedule "
                              "{\"class_name\": \"ExponentialDecay\", \"config\": {...}} of "
                              "keras.optimizers.schedules, applied by the parameter server per step (default: {})",
                              to_json_object)
    loss = _param("loss", "Keras loss name; empty chooses from the label column and task (default: empty)", _S)
    stepsPerSync = _param("stepsPerSync", "local mini-batch steps between exchanges with the parameter server; "
                          "above 1 a worker sends its weight change every k steps, which cuts traffic and "
                          "trains faster on few cores (default: 1)", _I)
    shuffle = _param("shuffle", "shuffle the rows of each worker's partition every epoch, within windows of one "
                     "Arrow batch (spark.sql.execution.arrow.maxRecordsPerBatch rows) (default: true)", _B)
    validationFraction = _param("validationFraction", "fraction of rows held out for per-epoch validation, "
                                "in [0, 1) (default: 0.0)", _F)
    seed = _param("seed", "random seed of the initial weights of a built model (built-in MLP, modelConfig, "
                  "modelFactory), of the shuffling and of the validation split (default: 0)", _to_long)
    verbose = _param("verbose", "what fit prints on the driver's console: 0 nothing; 1 one line per epoch "
                     "(epoch k/n, loss, validation metrics, samples/s, epoch time, ETA); 2 also a line when the "
                     "input is cached and one with the training setup (default: 1)", _I)
    inferenceBatchSize = _param("inferenceBatchSize", "rows per model call during transform (default: 1024)", _I)
    inputShape = _param("inputShape", "in transform, the shape each flat feature row is reshaped to before the "
                        "model is called, e.g. [28, 28, 1]; empty uses the model's own input shape; training feeds "
                        "flat rows (default: empty)", _LI)
    handleInvalid = _param("handleInvalid", "how to handle rows whose features or label are null or hold NaN, "
                           "+/-inf or null elements, or whose weight is null, NaN, +/-inf or negative: 'error' "
                           "fails naming the column, what was found and the fix; 'skip' drops those rows, in fit "
                           "and in transform (default: error)", _S)

    # ---- inputs: several feature columns, sample weights (Scala's KerasInputParams) ----
    featuresCols = _param("featuresCols", "feature columns (ML Vector, array of numbers or number each), "
                          "concatenated in this order into one feature row in fit and transform, handleInvalid "
                          "applying to each; set it instead of featuresCol, never both (default: empty, use "
                          "featuresCol)", TypeConverters.toListString)
    weightCol = _param("weightCol", "numeric column of per-row sample weights multiplying each row's loss in "
                       "training and validation (Keras sample_weight semantics); a null, NaN, infinite or "
                       "negative weight makes the row invalid (see handleInvalid); fit only (default: empty, every "
                       "weight is 1)", _S)
    # ---- checkpoints (Scala: KerasCheckpointParams; see dlbridge.trainer.checkpoints) ----
    checkpointDir = _param("checkpointDir", "directory (any Hadoop FS path) for checkpoints of the weights, "
                           "optimizer state and epoch; a fit whose directory holds a checkpoint of the same model "
                           "resumes after its epoch, one of a different model is refused; empty disables "
                           "checkpoints (default: empty)", _S)
    checkpointInterval = _param("checkpointInterval", "set checkpoint interval (>= 1) or disable checkpoint (-1): "
                                "a checkpoint is written every that many epochs and after the last epoch "
                                "(default: 10)", _I)
    # ---- per-epoch options (Scala's KerasEpochParams) ----
    metrics = _param("metrics", "Keras metric names (e.g. accuracy, auc, precision, recall, mae, mse) computed each "
                     "epoch on the validation split and reported as val_<name>; needs validationFraction > 0 "
                     "(default: empty)", TypeConverters.toListString)
    earlyStoppingPatience = _param("earlyStoppingPatience", "stop when val_loss has not improved for this many "
                                   "epochs and keep the best epoch's weights; 0 never stops early; needs "
                                   "validationFraction > 0 (default: 0)", _I)
    tensorboardDir = _param("tensorboardDir", "directory (any Hadoop FS path) for TensorBoard event files of the "
                            "per-epoch loss and metrics, updated after every epoch; empty writes none "
                            "(default: empty)", _S)

    DEFAULTS: Dict[str, Any] = dict(
        featuresCol="features", labelCol="label", predictionCol="prediction", probabilityCol="probability",
        rawOutputCol="", modelFile="", modelConfig="", modelFactory="", modelFactoryArgs="{}",
        hiddenLayers=[64], task="classification", mode="hogwild", epochs=10, batchSize=128, numWorkers=2,
        optimizer="adam", optimizerOptions="{}", loss="", stepsPerSync=1, shuffle=True,
        validationFraction=0.0, seed=0, verbose=1, inferenceBatchSize=1024, inputShape=[],
        handleInvalid="error", featuresCols=[], weightCol="",
        checkpointDir="", checkpointInterval=10,
        metrics=[], earlyStoppingPatience=0, tensorboardDir="",  # per-epoch options
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(**self.DEFAULTS)


def _accessor(prefix: str, name: str) -> Any:
    """A ``getX`` / ``setX`` method for the param ``name`` (pyspark's naming)."""
    method_name = prefix + name[0].upper() + name[1:]
    if prefix == "get":
        def method(self: Params) -> Any:
            return self.getOrDefault(name)
        method.__doc__ = f"Gets the value of {name} or its default."
    else:
        def method(self: Params, value: Any) -> Any:  # type: ignore[misc]
            return self._set(**{name: value})
        method.__doc__ = f"Sets the value of {name}."
    method.__name__ = method_name
    return method


for _name in _KerasParams.DEFAULTS:
    setattr(_KerasParams, "get" + _name[0].upper() + _name[1:], _accessor("get", _name))

_Json = Union[str, Dict[str, Any]]


class KerasEstimator(JavaEstimator, _KerasParams, JavaMLWritable, JavaMLReadable["KerasEstimator"]):
    """Trains a Keras 3 model on a DataFrame with dlbridge's parameter-server trainer.

    The same stage as Scala's ``dlbridge.ml.KerasEstimator``; every keyword
    below is a param with the same name and default as in Scala (see each
    param's doc, e.g. ``KerasEstimator().explainParams()``).

    Examples
    --------
    >>> est = KerasEstimator(hiddenLayers=[64], epochs=5, mode="sync")  # doctest: +SKIP
    >>> model = est.fit(train)  # doctest: +SKIP
    >>> model.transform(test).select("prediction", "probability")  # doctest: +SKIP
    """

    __module__ = "dlbridge.ml"  # pyspark maps it to the JVM class dlbridge.ml.KerasEstimator (see wrapper.py)

    @keyword_only
    def __init__(self, *, featuresCol: str = "features", labelCol: str = "label", predictionCol: str = "prediction",
                 probabilityCol: str = "probability", rawOutputCol: str = "", modelFile: str = "",
                 modelConfig: str = "", modelFactory: str = "", modelFactoryArgs: _Json = "{}",
                 hiddenLayers: Optional[List[int]] = None, task: str = "classification", mode: str = "hogwild",
                 epochs: int = 10, batchSize: int = 128, numWorkers: int = 2, optimizer: str = "adam",
                 optimizerOptions: _Json = "{}", loss: str = "", stepsPerSync: int = 1, shuffle: bool = True,
                 validationFraction: float = 0.0, seed: int = 0, verbose: int = 1,
                 inferenceBatchSize: int = 1024, inputShape: Optional[List[int]] = None,
                 handleInvalid: str = "error", featuresCols: Optional[List[str]] = None,
                 weightCol: str = "", checkpointDir: str = "", checkpointInterval: int = 10,
                 metrics: Optional[List[str]] = None, earlyStoppingPatience: int = 0,
                 tensorboardDir: str = "") -> None:
        super().__init__()
        self._java_obj = self._new_java_obj("dlbridge.ml.KerasEstimator", self.uid)
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any) -> "KerasEstimator":
        """Sets the params given as keywords (the names of ``__init__``)."""
        return self._set(**self._input_kwargs)

    def _fit(self, dataset: DataFrame) -> "KerasModel":
        ensure_driver_backend(dataset.sparkSession)
        return super()._fit(dataset)  # type: ignore[return-value]

    def _create_model(self, java_model: Any) -> "KerasModel":
        return KerasModel(java_model)


for _name in _KerasParams.DEFAULTS:
    setattr(KerasEstimator, "set" + _name[0].upper() + _name[1:], _accessor("set", _name))


class KerasModel(JavaModel, _KerasParams, JavaMLWritable, JavaMLReadable["KerasModel"]):
    """A trained or pre-trained Keras model as a Spark ML Model (Scala's ``dlbridge.ml.KerasModel``).

    ``transform`` adds ``predictionCol`` (double), ``probabilityCol`` (Vector,
    classification) and ``rawOutputCol`` (array<float>) when set; the model
    runs on the executors as an Arrow pandas UDF.
    """

    __module__ = "dlbridge.ml"  # pyspark maps it to the JVM class dlbridge.ml.KerasModel (see wrapper.py)

    @property
    def summary(self) -> Dict[str, Any]:
        """Training history (one dict per epoch), the model's input/output shapes and ``resumedFromEpoch``.

        ``resumedFromEpoch`` is the epoch of the checkpoint (``checkpointDir``)
        the fit resumed from, 0 for a fresh start; the history then holds the
        epochs after it.

        Each epoch's dict holds ``loss`` and, with ``validationFraction > 0``,
        ``val_loss``, ``val_accuracy`` (classification) and ``val_<name>`` for
        each name of ``metrics``; with ``earlyStoppingPatience``, the summary
        also has ``bestEpoch`` (whose weights the model holds) and
        ``stoppedEpoch`` (0 if every epoch ran).

        Not available under Spark Connect (``NotImplementedError``): read the
        saved model's ``data/summary.json`` there instead.
        """
        require_classic("KerasModel.summary", _SAVED_SUMMARY_FIX)
        return json.loads(self._call_java("summary").json())

    @property
    def numFeatures(self) -> int:
        """Input values per row that the model takes (not available under Spark Connect)."""
        require_classic("KerasModel.numFeatures", _SAVED_SUMMARY_FIX + " Its 'inputShape' gives the input size.")
        return int(self._call_java("numFeatures"))

    def kerasModel(self) -> Any:
        """The stage's Keras model as a ``keras.Model`` in this Python process.

        Loaded from the stage's Keras v3 archive (the ``data/model.keras`` it
        saves) with ``safe_mode=True`` and not compiled, e.g. to log it with
        ``mlflow.keras.log_model`` or to call ``predict`` on numpy arrays.
        Each call loads a new, independent copy. For a stage made by
        :meth:`fromSavedModel`, it is the ``keras.layers.TFSMLayer`` of the
        stage's SavedModel and endpoint (callable on a batch; returns what the
        endpoint returns).

        Returns
        -------
        keras.Model or keras.layers.TFSMLayer
            The trained (or ``fromFile``) model, uncompiled; the TFSMLayer of a SavedModel stage.
        """
        require_classic("KerasModel.kerasModel()", _SAVED_MODEL_FIX)
        from dlbridge.inference import load_model_bytes, saved_model

        # modelBytes and networkFile are package-private in Scala (public in bytecode), as pyspark's
        # wrappers call Spark's private[ml] members; modelBytes is the archive the stage saves and runs.
        network = bytes(self._java_obj.modelBytes())
        if self._java_obj.networkFile() == saved_model.ARCHIVE:
            return saved_model.load_layer(network, self.summary["savedModelEndpoint"], f"KerasModel {self.uid}")
        return load_model_bytes(network, source=f"KerasModel {self.uid}")

    @classmethod
    def fromFile(cls, path: str) -> "KerasModel":
        """A Model stage for a pre-trained ``.keras`` file (any Hadoop FS path; loaded with safe_mode).

        Not available under Spark Connect (``NotImplementedError``): convert the
        file once with a classic session or a JVM job, then ``KerasModel.load``.
        """
        scala = _scala_companion(f"KerasModel.fromFile('{path}')",
                                 "convert the file once outside Spark Connect (a PySpark or spark-submit job: "
                                 "KerasModel.fromFile(path).write().save(dir)), then call KerasModel.load(dir) "
                                 "here; or train from it here with KerasEstimator(modelFile=path).")
        return cls(scala.fromFile(path))

    @classmethod
    def fromSavedModel(cls, path: str, endpoint: Optional[str] = None) -> "KerasModel":
        """A Model stage for a TensorFlow SavedModel directory, run through ``keras.layers.TFSMLayer``.

        The stage keeps the directory's files (read on the driver through the
        Hadoop FS API, so any Hadoop FS path works) and saves them in its
        ``data/``, so it keeps working after the directory is deleted. Set
        ``task`` to ``"regression"`` for a regressor; a classifier's output
        counts as probabilities when the endpoint computes it with Softmax or
        Sigmoid, else as logits. A SavedModel is trusted like a model file: its
        graph runs TensorFlow ops.

        Parameters
        ----------
        path : str
            The SavedModel directory, as written by ``tf.saved_model.save(obj, path)``
            or ``model.export(path)``.
        endpoint : str
            The signature or restored function to call; it must take one input
            tensor and return one output tensor (alone or as the only entry of
            a dict). Defaults to `None`: ``"serving_default"``, the default of
            Scala's ``KerasModel.fromSavedModel(path)``; ``model.export`` also
            writes ``"serve"``.

        Raises
        ------
        Exception
            Before any Spark job: a path that is not a SavedModel directory (the
            error names it), or an endpoint the SavedModel lacks (the error lists
            the endpoints it has). ``NotImplementedError`` under Spark Connect.
        """
        scala = _scala_companion(f"KerasModel.fromSavedModel('{path}')",
                                 "make the stage once outside Spark Connect (a PySpark or spark-submit job: "
                                 "KerasModel.fromSavedModel(path).write().save(dir)), then call "
                                 "KerasModel.load(dir) here.")
        return cls(scala.fromSavedModel(path) if endpoint is None else scala.fromSavedModel(path, endpoint))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        ensure_driver_backend(dataset.sparkSession)
        return super()._transform(dataset)


def _scala_companion(call: str, fix: str) -> Any:
    """Scala's ``KerasModel`` object (its statics), for ``call``: needs a classic session, whose backend it starts.

    ``fix`` is the way round under Spark Connect (``NotImplementedError`` there).
    """
    require_classic(call, fix)
    spark = SparkSession.getActiveSession()
    if spark is None:
        raise RuntimeError(f"{call} needs an active SparkSession; create one first.")
    ensure_driver_backend(spark)
    return spark.sparkContext._jvm.dlbridge.ml.KerasModel


_SAVED_MODEL_FIX = ("save the model (model.write().save(path)) and load its data/model.keras with "
                    "keras.saving.load_model(..., safe_mode=True) where that file is readable.")
_SAVED_SUMMARY_FIX = ("save the model (model.write().save(path)) and read the training history on the server with "
                      "spark.read.json(path + '/data/summary.json', multiLine=True).")


# A fitted model takes the inference-side setters only (training params are fixed by fit).
for _name in ("featuresCol", "featuresCols", "predictionCol", "probabilityCol", "rawOutputCol", "task",
              "inferenceBatchSize", "inputShape", "handleInvalid"):
    setattr(KerasModel, "set" + _name[0].upper() + _name[1:], _accessor("set", _name))
