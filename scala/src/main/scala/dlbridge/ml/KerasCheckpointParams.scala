package dlbridge.ml

import org.apache.spark.ml.param.{IntParam, Param, Params}

/**
 * Checkpoint params of the Keras stages (mixed into [[KerasParams]]): where fit writes the
 * weights, the parameter server's optimizer state and the epoch, and how often. A fit whose
 * `checkpointDir` holds a checkpoint of the same model resumes after its epoch (its summary's
 * `resumedFromEpoch`); one of a different model is refused. Mirrored by Python's `_KerasParams`.
 */
trait KerasCheckpointParams extends Params {

  /**
   * Directory (any Hadoop FS path, or a local path) of the fit's checkpoints; a fit whose directory
   * holds a checkpoint of the same model resumes from the epoch after it, and one of a different
   * model (architecture, task, loss, optimizer or its options) is refused. Empty disables
   * checkpoints. Default: empty.
   * @group param
   */
  final val checkpointDir: Param[String] = new Param[String](this, "checkpointDir",
    "directory (any Hadoop FS path) for checkpoints of the weights, optimizer state and epoch; a fit whose " +
      "directory holds a checkpoint of the same model resumes after its epoch, one of a different model is " +
      "refused; empty disables checkpoints (default: empty)")

  /**
   * Epochs between two checkpoints, as Spark's `checkpointInterval`: `>= 1` writes one every that many
   * epochs and after the last epoch; `-1` disables checkpoints (none written or resumed). Default: `10`.
   * @group param
   */
  final val checkpointInterval: IntParam = new IntParam(this, "checkpointInterval",
    "set checkpoint interval (>= 1) or disable checkpoint (-1): a checkpoint is written every that many epochs " +
      "and after the last epoch (default: 10)",
    (v: Int) => v == -1 || v >= 1)

  setDefault(checkpointDir -> "", checkpointInterval -> 10)

  final def getCheckpointDir: String = $(checkpointDir)
  final def getCheckpointInterval: Int = $(checkpointInterval)
}
