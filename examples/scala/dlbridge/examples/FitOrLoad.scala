package dlbridge.examples

import org.apache.spark.ml.PipelineModel
import org.apache.spark.sql.DataFrame

/**
 * The command line the example apps share: `[fit <pipelineDir> <resultDir> | load <pipelineDir> <resultDir>]`.
 * `fit` (the default) fits a pipeline and saves it to `pipelineDir` when given; `load` loads a saved one
 * (for example saved from PySpark). The transformed rows go as Parquet to `resultDir` when given.
 * Several complete commands (`fit <p> <r> load <p> <r>`) run one after the other in one application
 * ([[FitOrLoad.commands]]).
 */
private[examples] final class FitOrLoad(args: Seq[String]) {

  /** `fit` or `load`. */
  val mode: String = args.headOption.getOrElse("fit")

  /** The pipeline: `fit` run and saved (mode fit), or loaded from `pipelineDir` (mode load). */
  def pipeline(fit: => PipelineModel): PipelineModel = mode match {
    case "fit" =>
      val fitted = fit
      args.lift(1).foreach(dir => fitted.write.overwrite().save(dir))
      fitted
    case "load" =>
      require(args.length >= 2, "mode load needs the saved pipeline's directory: load <pipelineDir> [<resultDir>]")
      PipelineModel.load(args(1))
    case other => throw new IllegalArgumentException(s"mode must be fit or load; received: $other")
  }

  /** Writes `result` as Parquet to `resultDir` when given. */
  def writeResult(result: DataFrame): Unit =
    args.lift(2).foreach(dir => result.write.mode("overwrite").parquet(dir))
}

private[examples] object FitOrLoad {

  /** The commands of an app's arguments: one command, or several complete ones of three arguments each. */
  def commands(args: Seq[String]): Seq[FitOrLoad] =
    if (args.length <= 3) Seq(new FitOrLoad(args))
    else {
      require(args.length % 3 == 0, "several commands take three arguments each, " +
        s"fit|load <pipelineDir> <resultDir>; received: ${args.mkString(" ")}")
      args.grouped(3).map(new FitOrLoad(_)).toSeq
    }
}
