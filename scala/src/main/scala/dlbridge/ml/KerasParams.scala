package dlbridge.ml

import dlbridge.ml.param.{HasFeaturesCol, HasLabelCol, HasPredictionCol, JsonObjectParam}

import org.apache.spark.ml.param._

/**
 * Params shared by [[KerasEstimator]] and [[KerasModel]]: columns, the model source, the
 * trainer's options and inference options. Names and defaults are mirrored by Python's
 * `dlbridge.ml._KerasParams` (checked by a test).
 */
trait KerasParams extends HasFeaturesCol with HasLabelCol with HasPredictionCol with KerasInputParams
  with KerasCheckpointParams with KerasEpochParams {

  // ---- output columns ----

  /** Column for the class-probability Vector (classification); empty disables it. Default: `"probability"`. @group param */
  final val probabilityCol: Param[String] = new Param[String](this, "probabilityCol",
    "column for the class-probability vector (classification); empty disables it (default: probability)")

  /** Column for the model's raw output as array<float>; empty (the default) disables it. @group param */
  final val rawOutputCol: Param[String] = new Param[String](this, "rawOutputCol",
    "column for the model's raw output as array<float>; empty disables it (default: empty)")

  // ---- model source: at most one of modelFile, modelConfig, modelFactory; else the built-in MLP ----

  /** Path (any Hadoop FS) of a Keras v3 `.keras` file to start from. Default: empty. @group param */
  final val modelFile: Param[String] = new Param[String](this, "modelFile",
    "path of a Keras .keras file to train or use (default: empty)")

  /**
   * A Keras model's JSON config (`model.to_json()`): a JSON object only, never a path or a factory.
   * Deserialised in Keras safe mode; a config naming a lambda, a `Lambda` layer, or a class or
   * function outside Keras that is not a registered custom object is refused. Default: empty. @group param
   */
  final val modelConfig: ModelConfigParam = new ModelConfigParam(this, "modelConfig",
    "JSON config of a Keras model, as from model.to_json(): a JSON object only, deserialised in Keras safe " +
      "mode; lambdas, Lambda layers and classes outside Keras that are not registered custom objects are " +
      "refused (default: empty)")

  /**
   * The model factory: the name of one registered with `@dlbridge.register_model_factory`, or a
   * `module:function` listed in `spark.dlbridge.modelFactories.allowed` (see [[ModelSources]]);
   * called with `modelFactoryArgs`, it returns a Keras model. Default: empty. @group param
   */
  final val modelFactory: ModelFactoryParam = new ModelFactoryParam(this, "modelFactory",
    "name of a model factory registered with @dlbridge.register_model_factory, or a module:function listed " +
      "in spark.dlbridge.modelFactories.allowed; called with modelFactoryArgs, it returns a Keras model " +
      "(default: empty)")

  /** Keyword arguments of `modelFactory`, as a JSON object, checked against its signature. Default: `{}`. @group param */
  final val modelFactoryArgs: JsonObjectParam = new JsonObjectParam(this, "modelFactoryArgs",
    "keyword arguments of modelFactory, as a JSON object, checked against its signature before any job " +
      "(default: {})")

  /** Hidden layer sizes of the built-in MLP, used when no other model source is set. Default: `[64]`. @group param */
  final val hiddenLayers: IntArrayParam = new IntArrayParam(this, "hiddenLayers",
    "hidden layer sizes of the built-in MLP used when no model source is set (default: [64])",
    (v: Array[Int]) => v.forall(_ > 0))

  /** `classification` (softmax output, class-index prediction) or `regression`. Default: `classification`. @group param */
  final val task: Param[String] = new Param[String](this, "task",
    "classification or regression (default: classification)",
    ParamValidators.inArray(Array("classification", "regression")))

  // ---- trainer options ----

  /** `hogwild` (async, weights read without a lock), `async` (async, reads and updates under one lock) or `sync` (barrier, averaged). Default: `hogwild`. @group param */
  final val mode: Param[String] = new Param[String](this, "mode",
    "training mode: hogwild, async or sync (default: hogwild)",
    ParamValidators.inArray(Array("hogwild", "async", "sync")))

  /** Passes over the training data. Default: `10`. @group param */
  final val epochs: IntParam = new IntParam(this, "epochs", "passes over the training data (default: 10)",
    ParamValidators.gt(0))

  /** Mini-batch size of each worker step. Default: `128`. @group param */
  final val batchSize: IntParam = new IntParam(this, "batchSize", "mini-batch size of each worker step (default: 128)",
    ParamValidators.gt(0))

  /** Data-parallel workers (partitions) used for training. Default: `2`. @group param */
  final val numWorkers: IntParam = new IntParam(this, "numWorkers",
    "data-parallel workers (partitions) used for training (default: 2)", ParamValidators.gt(0))

  /** A Keras optimizer name (`adam`, `sgd`, `rmsprop`, ...). Default: `adam`. @group param */
  final val optimizer: Param[String] = new Param[String](this, "optimizer",
    "Keras optimizer name, e.g. adam, sgd, rmsprop (default: adam)", (v: String) => v != null && v.trim.nonEmpty)

  /**
   * The optimizer's options as a JSON object, e.g. `{"learning_rate": 0.001}`. `learning_rate` may
   * be a Keras learning-rate schedule, `{"class_name": "ExponentialDecay", "config": {...}}`, of
   * a class in `keras.optimizers.schedules` only (others are refused); the parameter server's
   * optimizer follows it by its step count (one step per applied gradient; with `stepsPerSync > 1`
   * each worker's local optimizer by its own steps). Default: `{}`. @group param
   */
  final val optimizerOptions: JsonObjectParam = new JsonObjectParam(this, "optimizerOptions",
    "optimizer options as a JSON object, e.g. {\"learning_rate\": 0.001}; learning_rate may be a Keras schedule " +
      "{\"class_name\": \"ExponentialDecay\", \"config\": {...}} of keras.optimizers.schedules, applied by the " +
      "parameter server per step (default: {})")

  /** A Keras loss name; empty picks one from the label column and task. Default: empty. @group param */
  final val loss: Param[String] = new Param[String](this, "loss",
    "Keras loss name; empty chooses from the label column and task (default: empty)")

  /** Local steps between pulls/pushes of the parameter server. Default: `1`. @group param */
  final val stepsPerSync: IntParam = new IntParam(this, "stepsPerSync",
    "local mini-batch steps between exchanges with the parameter server; above 1 a worker sends its weight " +
      "change every k steps, which cuts traffic and trains faster on few cores (default: 1)", ParamValidators.gt(0))

  /**
   * Shuffle the rows of each worker's partition every epoch (with `seed`), within windows of one Arrow
   * batch (`spark.sql.execution.arrow.maxRecordsPerBatch` rows). Default: `true`. @group param
   */
  final val shuffle: BooleanParam = new BooleanParam(this, "shuffle",
    "shuffle the rows of each worker's partition every epoch, within windows of one Arrow batch " +
      "(spark.sql.execution.arrow.maxRecordsPerBatch rows) (default: true)")

  /**
   * Fraction of rows held out to report validation loss/metrics per epoch, in [0, 1). A row's side is
   * drawn from a hash of its content (features, label, weight) and `seed`, so the same rows are held
   * out whatever the input's partitioning or order; identical rows share a side. Default: `0.0`.
   * @group param
   */
  final val validationFraction: DoubleParam = new DoubleParam(this, "validationFraction",
    "fraction of rows held out for per-epoch validation, in [0, 1) (default: 0.0)",
    ParamValidators.inRange(0.0, 1.0, lowerInclusive = true, upperInclusive = false))

  /**
   * Random seed (a `Long`, as Spark's `HasSeed`) of the initial weights of a built model (the
   * built-in MLP, `modelConfig`, `modelFactory`; a `modelFile`'s weights are kept), of each worker's
   * shuffling and of the validation split. Default: `0` (not Spark's hash of the class name, so that
   * the estimator and its model share one default in every language). @group param
   */
  final val seed: LongParam = new LongParam(this, "seed",
    "random seed of the initial weights of a built model (built-in MLP, modelConfig, modelFactory), of the " +
      "shuffling and of the validation split (default: 0)")

  /**
   * What fit prints on the driver's console (`System.err` of a JVM driver, `sys.stderr` of a PySpark
   * one): `0` nothing; `1` one line per epoch (epoch k/n, loss, validation metrics, samples/s, epoch
   * time, ETA); `2` also a line once the input is read, checked and cached, and one with the
   * training setup (mode, workers, loss, parameters, server address). Default: `1`. @group param
   */
  final val verbose: IntParam = new IntParam(this, "verbose",
    "what fit prints on the driver's console: 0 nothing; 1 one line per epoch (epoch k/n, loss, validation " +
      "metrics, samples/s, epoch time, ETA); 2 also a line when the input is cached and one with the training " +
      "setup (default: 1)",
    ParamValidators.inRange(0, 2))

  // ---- inference ----

  /** Rows per model call during transform. Default: `1024`. @group param */
  final val inferenceBatchSize: IntParam = new IntParam(this, "inferenceBatchSize",
    "rows per model call during transform (default: 1024)", ParamValidators.gt(0))

  /**
   * In transform, the shape each flat feature row is reshaped to before the model is called, e.g.
   * `[28, 28, 1]`; empty uses the model's own input shape. Training feeds flat rows whatever its value
   * (a model for images starts with a `Reshape` layer). Default: empty. @group param
   */
  final val inputShape: IntArrayParam = new IntArrayParam(this, "inputShape",
    "in transform, the shape each flat feature row is reshaped to before the model is called, e.g. [28, 28, 1]; " +
      "empty uses the model's own input shape; training feeds flat rows (default: empty)",
    (v: Array[Int]) => v.forall(_ > 0))

  // ---- invalid rows ----

  /**
   * How rows with invalid data are handled, in fit and transform, like VectorAssembler's
   * `handleInvalid`: a row is invalid when its features (any column of `featuresCols`) or, in fit, its
   * label are null, or hold NaN, +/-inf or null elements, or (in fit) its `weightCol` weight is null,
   * NaN, +/-inf or negative. `error` fails with an error naming the column, what was found
   * (in fit, the count) and the fix; `skip` drops such rows (fit trains on the valid rows only;
   * transform outputs only the valid rows). Default: `error`.
   * @group param
   */
  final val handleInvalid: Param[String] = new Param[String](this, "handleInvalid",
    "how to handle rows whose features or label are null or hold NaN, +/-inf or null elements, or whose weight " +
      "is null, NaN, +/-inf or negative: 'error' fails " +
      "naming the column, what was found and the fix; 'skip' drops those rows, in fit and in transform " +
      "(default: error)", ParamValidators.inArray(Array("error", "skip")))

  setDefault(probabilityCol -> "probability", rawOutputCol -> "", modelFile -> "", modelConfig -> "",
    modelFactory -> "", modelFactoryArgs -> "{}", hiddenLayers -> Array(64), task -> "classification",
    mode -> "hogwild", epochs -> 10, batchSize -> 128, numWorkers -> 2, optimizer -> "adam",
    optimizerOptions -> "{}", loss -> "", stepsPerSync -> 1, shuffle -> true, validationFraction -> 0.0,
    seed -> 0L, verbose -> 1, inferenceBatchSize -> 1024, inputShape -> Array.empty[Int],
    handleInvalid -> "error")

  final def getProbabilityCol: String = $(probabilityCol)
  final def getRawOutputCol: String = $(rawOutputCol)
  final def getModelFile: String = $(modelFile)
  final def getModelConfig: String = $(modelConfig)
  final def getModelFactory: String = $(modelFactory)
  final def getModelFactoryArgs: String = $(modelFactoryArgs)
  final def getHiddenLayers: Array[Int] = $(hiddenLayers)
  final def getTask: String = $(task)
  final def getMode: String = $(mode)
  final def getEpochs: Int = $(epochs)
  final def getBatchSize: Int = $(batchSize)
  final def getNumWorkers: Int = $(numWorkers)
  final def getOptimizer: String = $(optimizer)
  final def getOptimizerOptions: String = $(optimizerOptions)
  final def getLoss: String = $(loss)
  final def getStepsPerSync: Int = $(stepsPerSync)
  final def getShuffle: Boolean = $(shuffle)
  final def getValidationFraction: Double = $(validationFraction)
  final def getSeed: Long = $(seed)
  final def getVerbose: Int = $(verbose)
  final def getInferenceBatchSize: Int = $(inferenceBatchSize)
  final def getInputShape: Array[Int] = $(inputShape)
  final def getHandleInvalid: String = $(handleInvalid)
}
