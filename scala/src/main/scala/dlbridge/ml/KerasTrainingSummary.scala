package dlbridge.ml

import org.json4s._
import org.json4s.jackson.JsonMethods.parse

/**
 * What training reported: per-epoch metrics (`loss`, and `val_loss`, `val_accuracy`, `val_<name>`
 * for each name of the `metrics` param, ... when `validationFraction > 0`), samples per second,
 * where early stopping ended training ([[bestEpoch]], [[stoppedEpoch]]), and the model's input and
 * output shapes. Java-friendly: arrays and strings only.
 */
class KerasTrainingSummary private[ml] (val json: String) extends Serializable {
  private def parsed: JValue = parse(json)

  /** Number of epochs recorded (0 for a model that was not trained by dlbridge). */
  def epochs: Int = history.length

  /**
   * The number of each recorded epoch, from 1: `1 .. epochs` for a fresh fit, and from
   * `resumedFromEpoch + 1` on for a fit resumed from a checkpoint.
   */
  def epochNumbers: Array[Int] = history.map(_ \ "epoch" match {
    case JInt(v) => v.toInt
    case _ => 0
  }).toArray

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

  /**
   * The per-epoch values of the metric `name` (NaN where an epoch lacks it): a recorded name such
   * as `loss`, `val_loss`, `val_auc`, or a name of the `metrics` param such as `auc`, which reads
   * `val_auc`.
   *
   * @throws IllegalArgumentException if no epoch recorded `name` (nor `val_<name>`); the message
   *   lists the recorded names
   */
  def metric(name: String): Array[Double] = {
    val names = metricNames
    val key = if (names.contains(name)) name else s"val_$name"
    require(names.contains(key), s"KerasTrainingSummary.metric: no metric named '$name' was recorded" +
      (if (names.isEmpty) " (this model has no training history: it was not trained by dlbridge)."
       else s"; recorded: ${names.mkString(", ")}. Fix: use one of those (or a name of the metrics param, " +
         "e.g. auc for val_auc)."))
    values(key)
  }

  /**
   * The epoch whose weights the model holds when `earlyStoppingPatience` was set (the epoch with the
   * lowest `val_loss`); 0 without early stopping.
   */
  def bestEpoch: Int = intField("bestEpoch")

  /** The epoch after which early stopping ended training; 0 if every epoch ran (or without early stopping). */
  def stoppedEpoch: Int = intField("stoppedEpoch")

  private def intField(key: String): Int = parsed \ key match {
    case JInt(v) => v.toInt
    case _ => 0
  }

  private def values(name: String): Array[Double] = history.map(_ \ name match {
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
  def lossHistory: Array[Double] = values("loss")

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
