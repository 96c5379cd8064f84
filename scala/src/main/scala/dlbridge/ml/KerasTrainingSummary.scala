package dlbridge.ml

import org.json4s._
import org.json4s.jackson.JsonMethods.parse

/**
 * What training reported: per-epoch metrics (`loss`, and `val_loss`, `val_accuracy`, ... when
 * `validationFraction > 0`), samples per second, and the model's input and output shapes.
 * Java-friendly: arrays and strings only.
 */
class KerasTrainingSummary private[ml] (val json: String) extends Serializable {
  private def parsed: JValue = parse(json)

  /** Number of epochs recorded (0 for a model that was not trained by dlbridge). */
  def epochs: Int = history.length

  private def history: List[JValue] = parsed \ "history" match {
    case JArray(values) => values
    case _ => Nil
  }

  /** The metric names recorded per epoch, e.g. `loss`, `val_loss`, `val_accuracy`. */
  def metricNames: Array[String] =
    history.flatMap {
      case JObject(fields) => fields.collect { case (k, _: JDouble | _: JInt | _: JDecimal) if k != "epoch" => k }
      case _ => Nil
    }.distinct.toArray

  /** The per-epoch values of `name` (NaN where an epoch lacks it). */
  def metric(name: String): Array[Double] = history.map(_ \ name match {
    case JDouble(v) => v
    case JInt(v) => v.toDouble
    case JDecimal(v) => v.toDouble
    case _ => Double.NaN
  }).toArray

  /**
   * The epoch of the checkpoint (in `checkpointDir`) that the fit resumed from; 0 when it started
   * fresh or had no checkpoints. The history then holds epochs `resumedFromEpoch + 1` on.
   */
  def resumedFromEpoch: Int = parsed \ "resumedFromEpoch" match {
    case JInt(v) => v.toInt
    case _ => 0
  }

  /** The per-epoch training loss. */
  def lossHistory: Array[Double] = metric("loss")

  /** The model's input shape without the batch dimension. */
  def inputShape: Array[Int] = shape("inputShape")

  /** The model's output shape without the batch dimension. */
  def outputShape: Array[Int] = shape("outputShape")

  private def shape(key: String): Array[Int] = parsed \ key match {
    case JArray(values) => values.collect { case JInt(v) => v.toInt }.toArray
    case _ => Array.empty
  }

  override def toString: String = s"KerasTrainingSummary(epochs=$epochs, loss=${lossHistory.mkString("[", ", ", "]")})"
}
