package dlbridge.ml

import dlbridge.ml.param.{HasInputCols, HasOutputCol, HasPythonFunction}

import org.apache.spark.ml.Estimator
import org.apache.spark.ml.param.{Param, ParamMap}
import org.apache.spark.ml.util.{DefaultParamsReadable, DefaultParamsWritable, Identifiable}
import org.apache.spark.sql.Dataset
import org.apache.spark.sql.types.{StructField, StructType}
import org.json4s.{JArray, JObject, JString}
import org.json4s.jackson.JsonMethods.{compact, parse, render}

/** Params of [[PythonEstimator]] and [[PythonModel]]. */
trait PythonEstimatorParams extends HasPythonFunction with HasInputCols with HasOutputCol {

  /**
   * Label column, passed to the fit function as `labelCol` when it declares that argument. No
   * default: optional (an unsupervised estimator leaves it unset).
   * @group param
   */
  final val labelCol: Param[String] = new Param[String](this, "labelCol",
    "label column name, passed to the fit function when set (optional, no default)")

  /** @group getParam */
  final def getLabelCol: String = $(labelCol)

  /**
   * Row-weight column, passed to the fit function as `weightCol` when it declares that argument.
   * No default: optional, as Spark's `weightCol`.
   * @group param
   */
  final val weightCol: Param[String] = new Param[String](this, "weightCol",
    "weight column name, passed to the fit function when set (optional, no default)")

  /** @group getParam */
  final def getWeightCol: String = $(weightCol)

  /** The column params a fit function or predictor may declare, in the order Python knows them. */
  private def columnParams: Seq[Param[_]] = Seq(inputCols, labelCol, weightCol)

  /**
   * The params Python receives: `functionParams` plus the column params that are set
   * (`inputCols`, and `labelCol` / `weightCol` when set).
   */
  protected def pythonParamsJson: String = {
    val JObject(functionFields) = parse($(functionParams)): @unchecked
    val clash = functionFields.map(_._1).filter(columnParams.map(_.name).contains)
    require(clash.isEmpty, s"$uid: functionParams sets ${clash.mkString(", ")}, which is a column param of the " +
      s"stage. Fix: remove it from functionParams and call set${clash.head.capitalize} instead.")
    val columns = Seq("inputCols" -> JArray($(inputCols).toList.map(JString(_)))) ++
      Seq(labelCol, weightCol).filter(isSet).map(p => p.name -> JString($(p)))
    compact(render(JObject(functionFields ++ columns)))
  }

  /** Checks the function and the set column params against `schema`; returns the schema with outputCol added. */
  protected def validateAndTransformSchema(schema: StructType, outputType: => org.apache.spark.sql.types.DataType,
      needLabel: Boolean): StructType = {
    requireFunction()
    require(isDefined(inputCols) && $(inputCols).nonEmpty, s"$uid: inputCols is not set: call setInputCols(...).")
    val required = $(inputCols).toSeq ++ (if (needLabel) Seq(labelCol, weightCol).filter(isSet).map(p => $(p)) else Nil)
    val missing = required.filterNot(schema.fieldNames.contains)
    require(missing.isEmpty, s"$uid: column(s) ${missing.mkString(", ")} not found; the DataFrame has columns: " +
      s"${schema.fieldNames.mkString(", ")}. Fix: set inputCols/labelCol/weightCol to existing columns.")
    require(!schema.fieldNames.contains($(outputCol)),
      s"$uid: outputCol '${$(outputCol)}' already exists in the DataFrame; choose another name (or drop the column).")
    StructType(schema.fields :+ StructField($(outputCol), outputType, nullable = true))
  }
}

/**
 * An estimator whose fit runs a Python function registered with
 * `@dlbridge.register_estimator("name", returns=...)`: the fit function runs in the driver's
 * Python backend on the training DataFrame (so it can run Spark jobs, e.g. `dlbridge.trainer`) and
 * returns a model state of numpy arrays, bytes and JSON values; the [[PythonModel]] it produces runs
 * the estimator's predictor on the executors as an Arrow-vectorized UDF, the state reaching them by
 * broadcast.
 *
 * {{{
 * val model = new PythonEstimator()
 *   .setFunction("centroid_classifier").setFunctionParams("""{"shrink": 0.1}""")
 *   .setInputCols(Array("a", "b")).setLabelCol("label").setOutputCol("prediction")
 *   .fit(train)
 * model.transform(test)
 * }}}
 */
class PythonEstimator(override val uid: String)
  extends Estimator[PythonModel] with PythonEstimatorParams with DefaultParamsWritable {

  def this() = this(Identifiable.randomUID("pythonEstimator"))

  /** @group setParam */ def setFunction(value: String): this.type = set(function, value)
  /** @group setParam */ def setFunctionParams(value: String): this.type = set(functionParams, value)
  /** @group setParam */ def setInputCols(value: Array[String]): this.type = set(inputCols, value)
  /** @group setParam */ def setLabelCol(value: String): this.type = set(labelCol, value)
  /** @group setParam */ def setWeightCol(value: String): this.type = set(weightCol, value)
  /** @group setParam */ def setOutputCol(value: String): this.type = set(outputCol, value)

  /** Validates the columns and, in the Python backend (no Spark job), the params; adds outputCol. */
  override def transformSchema(schema: StructType): StructType =
    validateAndTransformSchema(schema,
      PythonStages.outputType(org.apache.spark.sql.SparkSession.active, $(function), pythonParamsJson,
        estimator = true),
      needLabel = true)

  override def fit(dataset: Dataset[_]): PythonModel = {
    transformSchema(dataset.schema, logging = true)
    val state = PythonStages.fit(dataset, uid, $(function), pythonParamsJson)
    copyValues(new PythonModel(uid, state).setParent(this))
  }

  override def copy(extra: ParamMap): PythonEstimator = defaultCopy(extra)
}

/** Loads a saved [[PythonEstimator]] (its function is looked up in the registry at fit, never imported from the file). */
object PythonEstimator extends DefaultParamsReadable[PythonEstimator] {
  override def load(path: String): PythonEstimator = super.load(path)
}
