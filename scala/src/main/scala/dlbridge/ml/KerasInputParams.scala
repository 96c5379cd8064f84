package dlbridge.ml

import org.apache.spark.ml.param.{Param, Params, StringArrayParam}

/**
 * Input params of the Keras stages beyond `featuresCol` and `labelCol`: several feature columns
 * assembled in order (`featuresCols`) and per-row sample weights (`weightCol`, Spark's
 * `HasWeightCol` semantics). Mixed into [[KerasParams]]; mirrored by Python's `_KerasParams`.
 */
trait KerasInputParams extends Params {

  /**
   * Several feature columns, each an ML Vector, an array of numbers (nullable elements included) or
   * a number, concatenated in this order into one feature row, in fit and in transform;
   * `handleInvalid` applies to every column. Set it instead of `featuresCol`: setting both is an
   * error before any job. Default: empty (use `featuresCol`).
   * @group param
   */
  final val featuresCols: StringArrayParam = new StringArrayParam(this, "featuresCols",
    "feature columns (ML Vector, array of numbers or number each), concatenated in this order into one " +
      "feature row in fit and transform, handleInvalid applying to each; set it instead of featuresCol, " +
      "never both (default: empty, use featuresCol)",
    (v: Array[String]) => v.forall(name => name != null && name.nonEmpty) && v.distinct.length == v.length)

  /**
   * Numeric column of per-row sample weights, as in Spark's `HasWeightCol`: each row's loss is
   * multiplied by its weight (Keras `sample_weight` semantics: the weighted sum over a mini-batch is
   * divided by the batch's row count), in training and in the validation loss. A null, NaN,
   * infinite or negative weight makes the row invalid (see `handleInvalid`). Used by fit only.
   * Default: empty (every weight is 1).
   * @group param
   */
  final val weightCol: Param[String] = new Param[String](this, "weightCol",
    "numeric column of per-row sample weights multiplying each row's loss in training and validation " +
      "(Keras sample_weight semantics); a null, NaN, infinite or negative weight makes the row invalid " +
      "(see handleInvalid); fit only (default: empty, every weight is 1)")

  setDefault(featuresCols -> Array.empty[String], weightCol -> "")

  /** @group getParam */
  final def getFeaturesCols: Array[String] = $(featuresCols)

  /** @group getParam */
  final def getWeightCol: String = $(weightCol)
}
