package dlbridge.ml

import dlbridge.ml.param.{HasInputCol, HasInputCols, HasOutputCol, HasPythonFunction}

import org.apache.spark.ml.Transformer
import org.apache.spark.ml.param.ParamMap
import org.apache.spark.ml.util.{DefaultParamsReadable, DefaultParamsWritable, Identifiable}
import org.apache.spark.sql.{DataFrame, Dataset, SparkSession}
import org.apache.spark.sql.functions.col
import org.apache.spark.sql.types.{StructField, StructType}

/** Params of [[PythonTransformer]]. */
trait PythonTransformerParams extends HasPythonFunction with HasInputCol with HasInputCols with HasOutputCol {

  /** The input columns, from exactly one of `inputCol` or `inputCols`. */
  protected def inputColumnNames: Seq[String] = {
    requireFunction()
    (isSet(inputCol), isSet(inputCols)) match {
      case (true, false) => Seq($(inputCol))
      case (false, true) if $(inputCols).nonEmpty => $(inputCols).toSeq
      case (true, true) => throw new IllegalArgumentException(
        s"$uid: both inputCol (${$(inputCol)}) and inputCols (${$(inputCols).mkString(",")}) are set; set only one.")
      case _ => throw new IllegalArgumentException(
        s"$uid: no input column: set inputCol to one column or inputCols to several.")
    }
  }
}

/**
 * Runs a registered Python function on Arrow batches of one or more columns and appends its result
 * as a new column. The function runs on the executors as an Arrow-vectorized pandas UDF; the
 * driver-side Python backend only validates the params and builds the UDF, so `transform` is lazy.
 *
 * {{{
 * val t = new PythonTransformer()
 *   .setFunction("plus_k").setFunctionParams("""{"k": 2.5}""")
 *   .setInputCol("x").setOutputCol("y")
 * t.transform(df)
 * }}}
 */
class PythonTransformer(override val uid: String)
  extends Transformer with PythonTransformerParams with DefaultParamsWritable {

  def this() = this(Identifiable.randomUID("pythonTransformer"))

  /** @group setParam */
  def setFunction(value: String): this.type = set(function, value)

  /** @group setParam */
  def setFunctionParams(value: String): this.type = set(functionParams, value)

  /** Same as [[setFunctionParams]]: the function's keyword arguments as a JSON object. @group setParam */
  def setParams(value: String): this.type = setFunctionParams(value)

  /** @group setParam */
  def setInputCol(value: String): this.type = set(inputCol, value)

  /** @group setParam */
  def setInputCols(value: Array[String]): this.type = set(inputCols, value)

  /** @group setParam */
  def setOutputCol(value: String): this.type = set(outputCol, value)

  override def transformSchema(schema: StructType): StructType = {
    val inputs = inputColumnNames
    val missing = inputs.filterNot(schema.fieldNames.contains)
    require(missing.isEmpty, s"$uid: input column(s) ${missing.mkString(", ")} not found; " +
      s"the DataFrame has columns: ${schema.fieldNames.mkString(", ")}.")
    require(!schema.fieldNames.contains($(outputCol)),
      s"$uid: output column ${$(outputCol)} already exists; choose another outputCol.")
    val outputType = PythonStages.outputType(SparkSession.active, $(function), $(functionParams))
    StructType(schema.fields :+ StructField($(outputCol), outputType, nullable = true))
  }

  override def transform(dataset: Dataset[_]): DataFrame = {
    transformSchema(dataset.schema, logging = true)
    val udf = PythonStages.udf(dataset.sparkSession, $(function), $(functionParams), state = None)
    PythonUdfColumns.withUdfColumn(dataset.toDF(), $(outputCol), udf, inputColumnNames.map(col))
  }

  override def copy(extra: ParamMap): PythonTransformer = defaultCopy(extra)
}

/** Loads a saved [[PythonTransformer]]. */
object PythonTransformer extends DefaultParamsReadable[PythonTransformer] {
  override def load(path: String): PythonTransformer = super.load(path)
}
