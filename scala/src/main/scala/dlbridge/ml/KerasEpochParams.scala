package dlbridge.ml

import org.apache.spark.ml.param.{IntParam, Param, ParamValidators, Params, StringArrayParam}

/**
 * Per-epoch options of [[KerasEstimator]]: validation metrics, early stopping and TensorBoard
 * event files. Each is off by default and costs nothing then. Mirrored by Python's
 * `dlbridge.ml._KerasParams` (names, docs and defaults, checked by a test); the trainer's side
 * is `dlbridge.trainer.metrics`, `early_stopping` and `tensorboard`.
 */
trait KerasEpochParams extends Params {

  /**
   * Keras metric names (`accuracy`, `auc`, `precision`, `recall`, `mae`, `mse`, ... any
   * `keras.metrics` name), checked before any job. Each is computed every epoch on the validation
   * split (so it needs `validationFraction > 0`) and reported as `val_<name>` in the progress line
   * and the summary ([[KerasTrainingSummary.metric]]). Classification reports `val_accuracy` also
   * without it. Default: empty.
   * @group param
   */
  final val metrics: StringArrayParam = new StringArrayParam(this, "metrics",
    "Keras metric names (e.g. accuracy, auc, precision, recall, mae, mse) computed each epoch on the validation " +
      "split and reported as val_<name>; needs validationFraction > 0 (default: empty)")

  /**
   * Stop training when `val_loss` has not improved for this many epochs, and keep the weights of
   * the best epoch (the fitted model holds them; the summary's `bestEpoch` and `stoppedEpoch` say
   * which epoch was best and where training stopped). `0` never stops early. Needs
   * `validationFraction > 0`. Default: `0`.
   * @group param
   */
  final val earlyStoppingPatience: IntParam = new IntParam(this, "earlyStoppingPatience",
    "stop when val_loss has not improved for this many epochs and keep the best epoch's weights; 0 never stops " +
      "early; needs validationFraction > 0 (default: 0)", ParamValidators.gtEq(0))

  /**
   * Directory (any Hadoop FS path) for TensorBoard event files of the per-epoch loss and metrics,
   * in the layout of Keras' TensorBoard callback (`train/` and `validation/`, scalars
   * `epoch_loss`, `epoch_<metric>`), updated after every epoch. Empty writes none. Default: empty.
   * @group param
   */
  final val tensorboardDir: Param[String] = new Param[String](this, "tensorboardDir",
    "directory (any Hadoop FS path) for TensorBoard event files of the per-epoch loss and metrics, updated after " +
      "every epoch; empty writes none (default: empty)")

  setDefault(metrics -> Array.empty[String], earlyStoppingPatience -> 0, tensorboardDir -> "")

  final def getMetrics: Array[String] = $(metrics)
  final def getEarlyStoppingPatience: Int = $(earlyStoppingPatience)
  final def getTensorboardDir: String = $(tensorboardDir)
}
