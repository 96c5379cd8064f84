package dlbridge.examples

import dlbridge.ml.PythonEstimator

import org.apache.spark.ml.Pipeline
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions.{col, cos, sin}

/**
 * Fits a user's own Python estimator, `centroid_classifier` (examples/python/centroids.py), as a
 * Spark ML stage from Scala, inside a Pipeline that is saved and can be loaded again (for example
 * by PySpark).
 *
 * {{{
 * spark-submit --master "local[2]" --jars <dlbridge jar> --py-files examples/python/centroids.py \
 *   --conf spark.dlbridge.python.modules=centroids \
 *   --class dlbridge.examples.CentroidExample <examples jar> [fit <pipelineDir> <resultDir> | load <pipelineDir> <resultDir>]
 * }}}
 * (several commands, e.g. `fit <dir> <dir> load <dir> <dir>`, run one after the other)
 * `fit` (the default) fits the pipeline on the training rows and saves it to `pipelineDir` when
 * given; `load` loads a saved one (for example saved from PySpark). Both predict the test rows and
 * write them, with their predictions, as Parquet to `resultDir` when given.
 */
object CentroidExample {

  def main(args: Array[String]): Unit = {
    val spark = SparkSession.builder().appName("dlbridge PythonEstimator example").getOrCreate()
    try FitOrLoad.commands(args.toSeq).foreach(run(spark, _))
    finally spark.stop()
  }

  /**
   * The rows with ids in [from, until): `label` = id % 2, and (`a`, `b`) around (-1, -1) for label 0
   * and (1, 1) for label 1, each coordinate within 1.2 of its centre (so the classes overlap a little).
   */
  def input(spark: SparkSession, from: Long, until: Long): DataFrame = {
    val centre = (col("id") % 2) * 2.0 - 1.0
    spark.range(from, until, 1, 4).select(col("id"),
      (centre + sin(col("id")) * 1.2).as("a"),
      (centre + cos(col("id") * 0.7) * 1.2).as("b"),
      (col("id") % 2).cast("double").as("label"))
  }

  /** The training rows: ids 0 until 4000. */
  def train(spark: SparkSession): DataFrame = input(spark, 0, 4000)

  /** The test rows: ids 4000 until 5000. */
  def test(spark: SparkSession): DataFrame = input(spark, 4000, 5000)

  private def run(spark: SparkSession, cli: FitOrLoad): Unit = {
    val model = cli.pipeline {
      val stage = new PythonEstimator().setFunction("centroid_classifier")
        .setFunctionParams("""{"shrink": 0.1}""")
        .setInputCols(Array("a", "b")).setLabelCol("label").setOutputCol("prediction")
      new Pipeline().setStages(Array(stage)).fit(train(spark))
    }
    val result = model.transform(test(spark))
    cli.writeResult(result)
    result.show(5)
    val rows = result.count()
    val accuracy = result.filter(col("prediction") === col("label")).count().toDouble / rows
    println(f"dlbridge example (${cli.mode}): accuracy = $accuracy%.4f on $rows test rows")
  }
}
