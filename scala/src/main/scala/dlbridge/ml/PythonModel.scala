package dlbridge.ml

import org.apache.spark.ml.Model
import org.apache.spark.ml.dlbridge.SparkShims
import org.apache.spark.ml.param.ParamMap
import org.apache.spark.ml.util.{Identifiable, MLReadable, MLReader, MLWritable, MLWriter}
import org.apache.spark.sql.{DataFrame, Dataset, SparkSession}
import org.apache.spark.sql.execution.python.UserDefinedPythonFunction
import org.apache.spark.sql.functions.col
import org.apache.spark.sql.types.StructType
import org.apache.spark.util.SizeEstimator
import org.json4s.JsonDSL._

/**
 * The model a [[PythonEstimator]] fitted: the state its Python fit function returned, run by the
 * estimator's registered predictor. `transform` is lazy: it appends `outputCol` (of the type the
 * estimator was registered with) computed on the executors by an Arrow-vectorized UDF; the
 * predictor is built once per Python worker from the state, which reaches the executors as a
 * broadcast variable. Saved as Spark ML metadata plus one file per state entry under `data/`
 * (`.npy` arrays, `.json` values, raw bytes): nothing pickled.
 *
 * @param state the model state: file name -> contents
 */
class PythonModel private[ml] (override val uid: String, private[ml] val state: PythonStages.State)
  extends Model[PythonModel] with PythonEstimatorParams with MLWritable {

  /**
   * A model of `uid` with an empty state and no `function` (so `transform` fails asking for it): the
   * constructor Spark Connect ML and `ServiceLoader` require. Get a usable model from
   * [[PythonEstimator.fit]] or [[PythonModel.load]].
   */
  def this(uid: String) = this(uid, Map.empty[String, Array[Byte]])

  /** An empty model with a fresh uid (see `this(uid)`). */
  def this() = this(Identifiable.randomUID("pythonModel"))

  /** The driver memory this model holds (its state), which Spark Connect's model cache weighs it by. */
  override def estimatedSize: Long = SizeEstimator.estimate(state)

  /** @group setParam */ def setInputCols(value: Array[String]): this.type = set(inputCols, value)
  /** @group setParam */ def setOutputCol(value: String): this.type = set(outputCol, value)

  /** The names of the state's files (e.g. `centroids.npy`, `meta.json`). */
  def stateFiles: Array[String] = state.keys.toArray.sorted

  @transient private var cachedUdf: Option[(String, UserDefinedPythonFunction)] = None

  /** Validates the input columns and, in the Python backend (no Spark job), the params; adds outputCol. */
  override def transformSchema(schema: StructType): StructType =
    validateAndTransformSchema(schema, PythonStages.outputType(SparkSession.active, $(function), pythonParamsJson, estimator = true),
      needLabel = false)

  override def transform(dataset: Dataset[_]): DataFrame = {
    transformSchema(dataset.schema, logging = true)
    PythonUdfColumns.withUdfColumn(dataset.toDF(), $(outputCol), pythonUdf(dataset.sparkSession),
      $(inputCols).toSeq.map(col))
  }

  /** The UDF for the current params, built once per params and SparkContext (it holds that context's broadcast). */
  private def pythonUdf(session: SparkSession): UserDefinedPythonFunction = synchronized {
    val params = pythonParamsJson
    val key = session.sparkContext.applicationId + "|" + session.sparkContext.startTime + "|" + params
    cachedUdf.filter(_._1 == key).map(_._2).getOrElse {
      val built = PythonStages.udf(session, $(function), params, Some(state))
      cachedUdf = Some(key -> built)
      built
    }
  }

  override def copy(extra: ParamMap): PythonModel = copyValues(new PythonModel(uid, state), extra).setParent(parent)

  override def write: MLWriter = new PythonModel.PythonModelWriter(this)
}

/** Loads a saved [[PythonModel]]: params from the metadata, the state from the files under `data/`. */
object PythonModel extends MLReadable[PythonModel] {

  override def read: MLReader[PythonModel] = new PythonModelReader

  override def load(path: String): PythonModel = super.load(path)

  private class PythonModelWriter(instance: PythonModel) extends MLWriter {
    override protected def saveImpl(path: String): Unit = {
      SparkShims.saveMetadata(instance, path, sparkSession, ("format" -> "dlbridge-state-v1") ~
        ("dlbridgeVersion" -> dlbridge.DlbridgeVersion.version))
      PythonStages.saveState(instance.state, s"$path/data", sparkSession)
    }
  }

  private class PythonModelReader extends MLReader[PythonModel] {
    private val className = classOf[PythonModel].getName

    override def load(path: String): PythonModel = {
      val model = new PythonModel(SparkShims.savedUid(path, sparkSession, className),
        PythonStages.readState(s"$path/data", sparkSession))
      SparkShims.loadMetadataInto(model, path, sparkSession, className)
      model
    }
  }
}
