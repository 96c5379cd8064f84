package dlbridge.ml

import java.nio.charset.StandardCharsets

import org.apache.spark.ml.Model
import org.apache.spark.ml.dlbridge.SparkShims
import org.apache.spark.ml.param.ParamMap
import org.apache.spark.ml.util._
import org.apache.spark.sql.{Column, DataFrame, Dataset, SparkSession}
import org.apache.spark.sql.catalyst.analysis.UnresolvedAttribute
import org.apache.spark.sql.dlbridge.SqlShims
import org.apache.spark.sql.execution.python.UserDefinedPythonFunction
import org.apache.spark.sql.functions.{coalesce, col, concat, lit, raise_error}
import org.apache.spark.sql.types.StructType
import org.apache.spark.util.SizeEstimator
import org.json4s.JsonAST.JObject
import org.json4s.JsonDSL._
import org.json4s.jackson.JsonMethods.{compact, parse, render}

/**
 * A trained (or pre-trained) Keras model as a Spark ML Model. `transform` is lazy: it adds
 * `predictionCol` (double: class index or regressed value), `probabilityCol` (ML Vector, for
 * classification) and `rawOutputCol` (array<float>) when set, keeping every input column. The
 * model runs on the executors as an Arrow UDF, loaded once per Python worker.
 *
 * @param modelBytes the network: a Keras v3 `.keras` archive (architecture + weights), or a TensorFlow
 *                   SavedModel directory as a zip archive ([[KerasModel.fromSavedModel]])
 * @param summaryJson training history and the model's input/output shapes, as JSON
 * @param networkFile the state (and saved `data/`) file name of `modelBytes`: `model.keras` or
 *                    `saved_model.zip`
 */
class KerasModel private[ml] (
    override val uid: String,
    private[ml] val modelBytes: Array[Byte],
    private[ml] val summaryJson: String,
    private[ml] val networkFile: String = KerasModel.KerasArchive)
  extends Model[KerasModel] with KerasParams with KerasStageLogic with MLWritable {

  /**
   * A model of `uid` holding no network yet, which `transform` and `write` refuse: the constructor
   * Spark Connect ML and `ServiceLoader` require. Get a usable model from [[KerasEstimator.fit]],
   * [[KerasModel.load]], [[KerasModel.fromFile]] or [[KerasModel.fromSavedModel]].
   */
  def this(uid: String) = this(uid, Array.emptyByteArray, "{}")

  /** An empty model with a fresh uid (see `this(uid)`). */
  def this() = this(Identifiable.randomUID("kerasModel"))

  /** @group setParam */ def setFeaturesCol(value: String): this.type = set(featuresCol, value)
  /** @group setParam */ def setFeaturesCols(value: Array[String]): this.type = set(featuresCols, value)
  /** @group setParam */ def setPredictionCol(value: String): this.type = set(predictionCol, value)
  /** @group setParam */ def setProbabilityCol(value: String): this.type = set(probabilityCol, value)
  /** @group setParam */ def setRawOutputCol(value: String): this.type = set(rawOutputCol, value)
  /** @group setParam */ def setTask(value: String): this.type = set(task, value)
  /** @group setParam */ def setInferenceBatchSize(value: Int): this.type = set(inferenceBatchSize, value)
  /** @group setParam */ def setInputShape(value: Array[Int]): this.type = set(inputShape, value)
  /** @group setParam */ def setHandleInvalid(value: String): this.type = set(handleInvalid, value)

  /** What training reported (history, shapes). */
  def summary: KerasTrainingSummary = new KerasTrainingSummary(summaryJson)

  /** Number of input values the model takes per row (product of its input shape). */
  def numFeatures: Int = summary.inputShape.product

  @transient private var cachedUdf: Option[(String, UserDefinedPythonFunction)] = None

  override def transformSchema(schema: StructType): StructType = {
    requireNetwork()
    outputSchema(schema, Some(numFeatures).filter(_ > 0))
  }

  /** Fails naming the model and the fix when it holds no network (made by `new KerasModel(uid)`). */
  private[ml] def requireNetwork(): Unit = require(modelBytes.nonEmpty, s"KerasModel $uid holds no Keras " +
    "network: it was constructed empty (new KerasModel(uid)). Fix: use the model KerasEstimator.fit returns, " +
    "KerasModel.load(path) of a saved model, KerasModel.fromFile(path) of a .keras file, or " +
    "KerasModel.fromSavedModel(path, endpoint) of a TensorFlow SavedModel.")

  /**
   * The driver memory this model holds (the Keras archive and the summary), which Spark Connect's
   * model cache weighs it by.
   */
  override def estimatedSize: Long = SizeEstimator.estimate(Array[AnyRef](modelBytes, summaryJson))

  override def transform(dataset: Dataset[_]): DataFrame = {
    val schema = transformSchema(dataset.schema, logging = true)
    val struct = uid + "__keras"
    val packed = uid + "__features"
    val (input, argument) = udfInput(dataset.toDF(), packed)
    val withStruct = PythonUdfColumns.withUdfColumn(input, struct, pythonUdf(dataset.sparkSession), Seq(argument))
      .drop(packed)
    val outputs = outputFields.map {
      case (name, field) if field == "probability" => name -> SqlShims.column(DenseVectorOf(UnresolvedAttribute(Seq(struct, field))))
      case (name, field) => name -> col(s"$struct.$field")
    }
    val result = outputs.foldLeft(withStruct) { case (df, (name, c)) => df.withColumn(name, c) }.drop(struct)
    require(result.schema.fieldNames.sameElements(schema.fieldNames), s"$uid: internal schema mismatch")
    result
  }

  /**
   * The rows the UDF runs on and its argument: each row's features as packed float32, invalid rows
   * handled lazily as `handleInvalid` says. `skip` adds the packed column `packedName` and filters
   * out the rows where it is null. `error` leaves `df` as it is and makes the argument fail the job
   * on an invalid row, with a message naming featuresCol, what the row holds and the fix; the
   * packing then runs in the UDF's own input projection, so the packed bytes are not also stored in
   * the rows Spark keeps to join the UDF's output back (in a profile of a 784-feature transform,
   * that extra column and its copies were about a third of the JVM's time).
   */
  private def udfInput(df: DataFrame, packedName: String): (DataFrame, Column) = {
    val several = $(featuresCols).nonEmpty
    val packed = if (several) KerasSchema.packedFeatures(df.schema, featureColumns)
      else KerasSchema.packedFeatures($(featuresCol))
    if ($(handleInvalid) == "skip") {
      (df.withColumn(packedName, packed).filter(col(packedName).isNotNull), col(packedName))
    } else {
      val message = concat(lit(s"$uid: $featuresDescription holds a row with "),
        if (several) KerasSchema.invalidReason(df.schema, featureColumns) else KerasSchema.invalidReason(df.schema, $(featuresCol)),
        lit(" (handleInvalid='error'); the model needs finite numbers in every feature. Fix: set " +
          "handleInvalid='skip' to drop such rows, or clean the data first (e.g. df.na.drop(), an Imputer, " +
          "or a filter on the column)."))
      (df, coalesce(packed, raise_error(message)))
    }
  }

  /**
   * The Arrow UDF for the current inference params, built by the backend once per params and
   * SparkContext (a UDF holds broadcasts of the context that built it). Python is told which
   * output fields to compute (the contract of [[outputFields]]).
   */
  private def pythonUdf(session: SparkSession): UserDefinedPythonFunction = synchronized {
    val params = compact(render(parse(paramsJson).asInstanceOf[JObject] ~ ("outputs" -> outputFields.map(_._2))))
    val key = session.sparkContext.applicationId + "|" + session.sparkContext.startTime + "|" + params
    val udf = cachedUdf.filter(_._1 == key).map(_._2).getOrElse {
      val built = PythonStages.udf(session, KerasModel.RegisteredName, params, Some(state))
      cachedUdf = Some(key -> built)
      built
    }
    udf
  }

  /** The model's state as the registered "keras" estimator's predictor takes it (and as saved). */
  private[ml] def state: PythonStages.State =
    Map(networkFile -> modelBytes, "summary.json" -> summaryJson.getBytes(StandardCharsets.UTF_8))

  override def copy(extra: ParamMap): KerasModel =
    copyValues(new KerasModel(uid, modelBytes, summaryJson, networkFile), extra).setParent(parent)

  override def write: MLWriter = new KerasModel.KerasModelWriter(this)
}

/**
 * Loads saved models (refusing a `modelFactory` `module:function` the application does not allow, as
 * [[KerasEstimator]] does), and turns a `.keras` file or a TensorFlow SavedModel trained elsewhere into
 * a [[KerasModel]].
 */
object KerasModel extends MLReadable[KerasModel] {

  override def read: MLReader[KerasModel] = new KerasModelReader

  override def load(path: String): KerasModel = super.load(path)

  /**
   * A Model stage for a pre-trained Keras v3 `.keras` file (any Hadoop FS path), loaded with
   * `safe_mode=True`. Set `task` to `regression` for a regressor. A file that is not a loadable
   * `.keras` archive fails with an error naming `path`.
   */
  def fromFile(path: String): KerasModel = {
    val session = SparkSession.active
    val bytes = KerasModelIO.readBytes(path, session)
    val args = compact(render("source" -> s"KerasModel.fromFile path '$path'"))
    fromState(Identifiable.randomUID("kerasModel"), PythonStages.loadState(session, RegisteredName, args,
      Map("model.keras" -> bytes)))
  }

  /**
   * A Model stage for a TensorFlow SavedModel directory (any Hadoop FS path, e.g. written by
   * `tf.saved_model.save(obj, dir)` or Keras' `model.export(dir)`), run through Keras 3's
   * `keras.layers.TFSMLayer(dir, call_endpoint = endpoint)`. The directory's files are kept in
   * the stage (saved in its `data/`), so the stage works after the directory is gone. Set `task`
   * to `regression` for a regressor; a classifier's output counts as probabilities when the
   * endpoint computes it with Softmax or Sigmoid, else as logits.
   *
   * Checked here, before any job: a path that is not a SavedModel directory fails naming `path`;
   * an `endpoint` the SavedModel does not have fails listing the endpoints it has. The endpoint
   * must take one input tensor and return one output tensor (alone or as the only entry of a
   * signature's dict). A SavedModel is trusted like a model file: its graph runs TensorFlow ops.
   *
   * @param endpoint a signature or restored function of the SavedModel (`serving_default`, or
   *                 `serve` for `model.export`)
   */
  def fromSavedModel(path: String, endpoint: String): KerasModel = KerasSavedModel.fromSavedModel(path, endpoint)

  /** [[fromSavedModel(path:String,endpoint:String)*]] with endpoint `serving_default`. */
  def fromSavedModel(path: String): KerasModel = fromSavedModel(path, KerasSavedModel.DefaultEndpoint)

  /** The state file of a `.keras` network. */
  private[ml] val KerasArchive = "model.keras"

  /** The name of the built-in Keras estimator in the Python registry (`dlbridge.keras_stage`). */
  private[ml] val RegisteredName = "keras"

  /**
   * A model of the state the registered "keras" estimator returns: the network (`model.keras`, or
   * `saved_model.zip` for a SavedModel) and `summary.json`.
   */
  private[ml] def fromState(uid: String, state: PythonStages.State): KerasModel = {
    val network = if (state.contains(KerasSavedModel.Archive)) KerasSavedModel.Archive else KerasArchive
    new KerasModel(uid, state(network), new String(state("summary.json"), StandardCharsets.UTF_8), network)
  }

  private[ml] class KerasModelWriter(instance: KerasModel) extends MLWriter {
    override protected def saveImpl(path: String): Unit = {
      instance.requireNetwork()
      val format = if (instance.networkFile == KerasSavedModel.Archive) "tf-saved-model-zip" else "keras-v3"
      SparkShims.saveMetadata(instance, path, sparkSession, ("format" -> format) ~ ("dlbridgeVersion" -> dlbridge.DlbridgeVersion.version))
      PythonStages.saveState(instance.state, s"$path/data", sparkSession)
    }
  }

  private class KerasModelReader extends MLReader[KerasModel] {
    private val className = classOf[KerasModel].getName

    override def load(path: String): KerasModel = {
      val uid = SparkShims.savedUid(path, sparkSession, className)
      val network = Seq(KerasSavedModel.Archive, KerasArchive).find(name => KerasModelIO.exists(s"$path/data/$name",
        sparkSession)).getOrElse(KerasArchive)
      val model = new KerasModel(uid, KerasModelIO.readBytes(s"$path/data/$network", sparkSession),
        KerasModelIO.readString(s"$path/data/summary.json", sparkSession), network) // the layout of PythonStages.saveState
      SparkShims.loadMetadataInto(model, path, sparkSession, className)
      ModelSources.checkLoaded(model, path, sparkSession)
      model
    }
  }
}
