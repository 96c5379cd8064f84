package dlbridge.ml

import scala.jdk.CollectionConverters._

import dlbridge.python.{CachedInputViews, PythonBridge}

import org.apache.hadoop.fs.Path
import org.apache.spark.sql.{Dataset, SparkSession}
import org.apache.spark.sql.execution.python.UserDefinedPythonFunction
import org.apache.spark.sql.execution.python.dlbridge.ProjectedArrowEvalPython
import org.apache.spark.sql.types.DataType

/**
 * The one way dlbridge's JVM stages reach the stages registered in Python (built-in Keras ones
 * included): validate params and ask the output type, fit an estimator, build the UDF of a
 * transformer or of a fitted model, complete a model state from a file. Each goes through the
 * driver's [[PythonBridge.backend]].
 *
 * A model state is a map of file names to bytes (`.npy` arrays, `.json` values, raw bytes), the
 * form Python's fit functions return (`dlbridge.state`); a model saves it as the files of its
 * `data/` directory.
 */
private[ml] object PythonStages {

  /** A fitted model's state: file name -> contents. */
  type State = Map[String, Array[Byte]]

  /**
   * The Spark type of the output column of the registered stage `function` for `paramsJson`
   * (validated first), a transformer or (`estimator` true) an estimator's model.
   */
  def outputType(session: SparkSession, function: String, paramsJson: String, estimator: Boolean): DataType =
    DataType.fromDDL(PythonBridge.backend(session).outputType(function,
      if (estimator) "estimator" else "transformer", paramsJson))

  /**
   * Runs the registered estimator's fit in Python on `dataset`, as the fit of the stage `uid` (named
   * in the trainer's progress lines and job descriptions), and returns its state. What the fit
   * cached is released however the fit ends, even when the Python backend died mid-fit.
   */
  def fit(dataset: Dataset[_], uid: String, function: String, paramsJson: String,
      initialState: State = Map.empty): State = {
    val session = dataset.sparkSession
    val fitId = CachedInputViews.newName()
    try {
      val state = PythonBridge.backend(session).fit(function, paramsJson, dataset.toDF(), fitId,
        if (initialState.isEmpty) null else initialState.asJava, uid)
      state.asScala.toMap
    } finally CachedInputViews.release(session, fitId)
  }

  /**
   * The Arrow UDF of a registered transformer (`state` None) or of a fitted model's predictor,
   * marked as dlbridge's for [[ProjectedArrowEvalPython]].
   */
  def udf(session: SparkSession, function: String, paramsJson: String, state: Option[State]): UserDefinedPythonFunction = {
    val udf = PythonBridge.backend(session).buildUdf(function, paramsJson, state.map(_.asJava).orNull)
      .asInstanceOf[UserDefinedPythonFunction]
    ProjectedArrowEvalPython.register(udf.func)
    udf
  }

  /** `state` checked and completed by the registered estimator's loader (for models made elsewhere). */
  def loadState(session: SparkSession, function: String, paramsJson: String, state: State): State =
    PythonBridge.backend(session).loadState(function, paramsJson, state.asJava).asScala.toMap

  /** Writes each file of `state` into the directory `dir` (any Hadoop file system, see [[KerasModelIO]]). */
  def saveState(state: State, dir: String, session: SparkSession): Unit =
    state.foreach { case (name, bytes) => KerasModelIO.writeBytes(s"$dir/$name", bytes, session) }

  /** The files of the directory `dir` as a state. */
  def readState(dir: String, session: SparkSession): State = {
    val path = new Path(dir)
    KerasModelIO.fileSystem(path, session).listStatus(path).filter(_.isFile).map(_.getPath.getName)
      .filterNot(name => name.startsWith(".") || name.startsWith("_")) // Hadoop's .crc and _SUCCESS files
      .map(name => name -> KerasModelIO.readBytes(s"$dir/$name", session)).toMap
  }
}
