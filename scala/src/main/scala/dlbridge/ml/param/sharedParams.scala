package dlbridge.ml.param

import org.apache.spark.ml.param.{Param, Params, StringArrayParam}

// Column params shared by dlbridge stages. Spark's own HasXxx traits are private[ml], so the
// project keeps its own, with the same names, docs and defaults as Spark's.

/** Trait for shared param inputCol (no default). */
trait HasInputCol extends Params {

  /** Param for input column name. @group param */
  final val inputCol: Param[String] = new Param[String](this, "inputCol", "input column name")

  /** @group getParam */
  final def getInputCol: String = $(inputCol)
}

/** Trait for shared param inputCols (no default). */
trait HasInputCols extends Params {

  /** Param for input column names. @group param */
  final val inputCols: StringArrayParam = new StringArrayParam(this, "inputCols", "input column names")

  /** @group getParam */
  final def getInputCols: Array[String] = $(inputCols)
}

/** Trait for shared param outputCol (default: uid + "__output"). */
trait HasOutputCol extends Params {

  /** Param for output column name. Default: `uid + "__output"`. @group param */
  final val outputCol: Param[String] = new Param[String](this, "outputCol", "output column name")

  setDefault(outputCol, uid + "__output")

  /** @group getParam */
  final def getOutputCol: String = $(outputCol)
}

/** Trait for shared param featuresCol (default: "features"). */
trait HasFeaturesCol extends Params {

  /** Param for features column name. Default: `"features"`. @group param */
  final val featuresCol: Param[String] = new Param[String](this, "featuresCol", "features column name")

  setDefault(featuresCol, "features")

  /** @group getParam */
  final def getFeaturesCol: String = $(featuresCol)
}

/** Trait for shared param labelCol (default: "label"). */
trait HasLabelCol extends Params {

  /** Param for label column name. Default: `"label"`. @group param */
  final val labelCol: Param[String] = new Param[String](this, "labelCol", "label column name")

  setDefault(labelCol, "label")

  /** @group getParam */
  final def getLabelCol: String = $(labelCol)
}

/** Trait for shared param predictionCol (default: "prediction"). */
trait HasPredictionCol extends Params {

  /** Param for prediction column name. Default: `"prediction"`. @group param */
  final val predictionCol: Param[String] = new Param[String](this, "predictionCol", "prediction column name")

  setDefault(predictionCol, "prediction")

  /** @group getParam */
  final def getPredictionCol: String = $(predictionCol)
}
