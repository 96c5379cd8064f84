package dlbridge.ml

import org.apache.spark.ml.Estimator
import org.apache.spark.ml.dlbridge.SparkShims
import org.apache.spark.ml.param.ParamMap
import org.apache.spark.ml.util.{DefaultParamsWritable, Identifiable, MLReadable, MLReader}
import org.apache.spark.sql.Dataset
import org.apache.spark.sql.types.StructType

/**
 * Trains a Keras 3 model (TensorFlow backend) on a DataFrame with dlbridge's parameter-server
 * trainer: the server runs in the driver's Python backend, data-parallel workers on the
 * executors. The model comes from `modelFile`, `modelConfig`, `modelFactory`, or is the built-in
 * MLP (`hiddenLayers`, `task`) sized from the data.
 *
 * {{{
 * val model = new KerasEstimator().setFeaturesCol("features").setLabelCol("label")
 *   .setHiddenLayers(Array(256, 256)).setOptimizer("adam")
 *   .setOptimizerOptions("""{"learning_rate": 0.001}""").setEpochs(10).setMode("hogwild")
 *   .fit(train)
 * }}}
 */
class KerasEstimator(override val uid: String)
  extends Estimator[KerasModel] with KerasParams with KerasStageLogic with DefaultParamsWritable {

  def this() = this(Identifiable.randomUID("kerasEst"))

  /** @group setParam */ def setFeaturesCol(value: String): this.type = set(featuresCol, value)
  /** @group setParam */ def setFeaturesCols(value: Array[String]): this.type = set(featuresCols, value)
  /** @group setParam */ def setWeightCol(value: String): this.type = set(weightCol, value)
  /** @group setParam */ def setPredictionCol(value: String): this.type = set(predictionCol, value)
  /** @group setParam */ def setProbabilityCol(value: String): this.type = set(probabilityCol, value)
  /** @group setParam */ def setRawOutputCol(value: String): this.type = set(rawOutputCol, value)
  /** @group setParam */ def setTask(value: String): this.type = set(task, value)
  /** @group setParam */ def setInferenceBatchSize(value: Int): this.type = set(inferenceBatchSize, value)
  /** @group setParam */ def setInputShape(value: Array[Int]): this.type = set(inputShape, value)
  /** @group setParam */ def setHandleInvalid(value: String): this.type = set(handleInvalid, value)

  /** @group setParam */ def setLabelCol(value: String): this.type = set(labelCol, value)
  /** @group setParam */ def setModelFile(value: String): this.type = set(modelFile, value)
  /** @group setParam */ def setModelConfig(value: String): this.type = set(modelConfig, value)
  /** @group setParam */ def setModelFactory(value: String): this.type = set(modelFactory, value)
  /** @group setParam */ def setModelFactoryArgs(value: String): this.type = set(modelFactoryArgs, value)
  /** @group setParam */ def setHiddenLayers(value: Array[Int]): this.type = set(hiddenLayers, value)
  /** @group setParam */ def setMode(value: String): this.type = set(mode, value)
  /** @group setParam */ def setEpochs(value: Int): this.type = set(epochs, value)
  /** @group setParam */ def setBatchSize(value: Int): this.type = set(batchSize, value)
  /** @group setParam */ def setNumWorkers(value: Int): this.type = set(numWorkers, value)
  /** @group setParam */ def setOptimizer(value: String): this.type = set(optimizer, value)
  /** @group setParam */ def setOptimizerOptions(value: String): this.type = set(optimizerOptions, value)
  /** @group setParam */ def setLoss(value: String): this.type = set(loss, value)
  /** @group setParam */ def setStepsPerSync(value: Int): this.type = set(stepsPerSync, value)
  /** @group setParam */ def setShuffle(value: Boolean): this.type = set(shuffle, value)
  /** @group setParam */ def setValidationFraction(value: Double): this.type = set(validationFraction, value)
  /** @group setParam */ def setSeed(value: Long): this.type = set(seed, value)
  /** @group setParam */ def setVerbose(value: Int): this.type = set(verbose, value)

  /** @group setParam */ def setCheckpointDir(value: String): this.type = set(checkpointDir, value)
  /** @group setParam */ def setCheckpointInterval(value: Int): this.type = set(checkpointInterval, value)

  // ---- per-epoch options (KerasEpochParams) ----
  /** @group setParam */ def setMetrics(value: Array[String]): this.type = set(metrics, value)
  /** @group setParam */ def setEarlyStoppingPatience(value: Int): this.type = set(earlyStoppingPatience, value)
  /** @group setParam */ def setTensorboardDir(value: String): this.type = set(tensorboardDir, value)

  override def transformSchema(schema: StructType): StructType = {
    checkModelSource()
    KerasSchema.checkLabel(schema, $(labelCol), uid)
    if ($(weightCol).nonEmpty) KerasSchema.checkWeight(schema, $(weightCol), uid)
    outputSchema(schema, None)
  }

  override def fit(dataset: Dataset[_]): KerasModel = {
    transformSchema(dataset.schema, logging = true)
    val start = if ($(modelFile).nonEmpty) Map("model.keras" -> KerasModelIO.readBytes($(modelFile), dataset.sparkSession))
      else Map.empty[String, Array[Byte]]
    val state = PythonStages.fit(dataset, uid, KerasModel.RegisteredName, paramsJson, start)
    copyValues(KerasModel.fromState(uid, state).setParent(this))
  }

  private def checkModelSource(): Unit = {
    val sources = Seq(modelFile, modelConfig, modelFactory).filter(p => $(p).nonEmpty).map(_.name)
    require(sources.size <= 1, s"$uid: set at most one model source; received ${sources.mkString(", ")}. " +
      "Fix: clear the others (or leave all empty for the built-in MLP of hiddenLayers).")
  }

  override def copy(extra: ParamMap): KerasEstimator = defaultCopy(extra)
}

/**
 * Loads a saved [[KerasEstimator]]. A `modelFactory` naming a `module:function` that the running
 * application does not list in `spark.dlbridge.modelFactories.allowed` is refused here (see
 * [[ModelSources]]); a registered name is checked at fit.
 */
object KerasEstimator extends MLReadable[KerasEstimator] {

  override def read: MLReader[KerasEstimator] = new KerasEstimatorReader

  override def load(path: String): KerasEstimator = super.load(path)

  private class KerasEstimatorReader extends MLReader[KerasEstimator] {
    private val className = classOf[KerasEstimator].getName

    override def load(path: String): KerasEstimator = {
      val estimator = new KerasEstimator(SparkShims.savedUid(path, sparkSession, className))
      SparkShims.loadMetadataInto(estimator, path, sparkSession, className)
      ModelSources.checkLoaded(estimator, path, sparkSession)
      estimator
    }
  }
}
