package dlbridge.ml

import org.apache.spark.ml.param.{Param, ParamMap}
import org.apache.spark.sql.types.{ArrayType, DoubleType, FloatType, StructField, StructType}
import org.apache.spark.ml.linalg.SQLDataTypes.VectorType
import org.json4s.JsonAST.JObject
import org.json4s.jackson.JsonMethods.{compact, parse, render}

/**
 * Schema logic shared by [[KerasEstimator]] and [[KerasModel]]. (Setters live on the concrete
 * classes so that Java sees them return the class, not this trait.)
 */
private[ml] trait KerasStageLogic extends KerasParams {

  /**
   * The output-column contract of the Keras stages, defined here once: each output param, the
   * field of the Python UDF's result struct that fills it (Python computes exactly the fields it is
   * asked for), and whether it is added for the current params.
   */
  private def outputContract: Seq[(String, String, Boolean)] = Seq(
    (predictionCol.name, "prediction", true),
    (probabilityCol.name, "probability", $(task) == "classification" && $(probabilityCol).nonEmpty),
    (rawOutputCol.name, "raw", $(rawOutputCol).nonEmpty))

  /** The output columns this stage adds, as (column name, result field), in order. */
  protected def outputFields: Seq[(String, String)] =
    outputContract.collect { case (param, field, true) => $(getParam(param).asInstanceOf[Param[String]]) -> field }

  /** The output columns this stage adds, as (param name, column name), in order. */
  protected def outputColumns: Seq[(String, String)] =
    outputContract.collect { case (param, _, true) => param -> $(getParam(param).asInstanceOf[Param[String]]) }

  /**
   * Validates the features column (and, when the model's input size is known, the vector size)
   * and returns the schema with the output columns appended.
   */
  protected def outputSchema(schema: StructType, modelInputs: Option[Int]): StructType = {
    val known = checkFeatureInputs(schema)
    val shape = $(inputShape)
    for (n <- known if shape.nonEmpty) require(shape.product == n, s"$uid: inputShape ${shape.mkString("[", ", ", "]")} " +
      s"holds ${shape.product} values but $featuresDescription has rows of $n values. Fix: set inputShape to a shape of $n values.")
    for (n <- known; m <- modelInputs) require(n == m, s"$uid: $featuresDescription has rows of $n values " +
      s"but the model expects $m input values. Fix: use the features the model was trained on.")
    KerasSchema.checkOutputsFree(schema, outputColumns, uid)
    val added = outputColumns.map {
      case ("predictionCol", name) => StructField(name, DoubleType, nullable = false)
      case ("probabilityCol", name) => StructField(name, VectorType, nullable = false)
      case (_, name) => StructField(name, ArrayType(FloatType, containsNull = false), nullable = false)
    }
    StructType(schema.fields ++ added)
  }

  /** The feature columns read: `featuresCols` when set, else `featuresCol`. */
  protected def featureColumns: Seq[String] =
    if ($(featuresCols).nonEmpty) $(featuresCols).toSeq else Seq($(featuresCol))

  /** How errors name the features: `featuresCol 'f'` or `featuresCols ['a', 'b']`. */
  protected def featuresDescription: String =
    if ($(featuresCols).isEmpty) s"featuresCol '${$(featuresCol)}'"
    else $(featuresCols).map(n => s"'$n'").mkString("featuresCols [", ", ", "]")

  /**
   * Checks the feature input (refusing `featuresCol` and `featuresCols` both set) and returns the
   * number of values per row when the schema tells it.
   */
  private def checkFeatureInputs(schema: StructType): Option[Int] = {
    require(!(isSet(featuresCol) && $(featuresCols).nonEmpty), s"$uid: featuresCol ('${$(featuresCol)}') and " +
      s"$featuresDescription are both set, but they are mutually exclusive. Fix: clear featuresCol to read the " +
      "columns of featuresCols, or set featuresCols to empty to read the one column of featuresCol.")
    if ($(featuresCols).isEmpty) KerasSchema.checkFeatures(schema, $(featuresCol), uid)
    else KerasSchema.checkFeatureColumns(schema, $(featuresCols).toSeq, uid)
  }

  /** Every param value (set or default) as one JSON object: what the Python side receives. */
  protected def paramsJson: String = {
    val map: ParamMap = extractParamMap()
    val fields = params.toList.filter(map.contains).map { p =>
      p.name -> parse(p.asInstanceOf[org.apache.spark.ml.param.Param[Any]].jsonEncode(map(p)))
    }
    compact(render(JObject(fields)))
  }
}
