package dlbridge.examples

import dlbridge.ml.PythonTransformer

import org.apache.spark.ml.Pipeline
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions.{col, sum}

/**
 * Runs the Python function `polynomial` (examples/python/example_udfs.py) as a Spark ML stage
 * from Scala, inside a Pipeline that is saved and loaded again.
 *
 * {{{
 * spark-submit --master "local[2]" --jars <dlbridge jar> --py-files examples/python/example_udfs.py \
 *   --conf spark.dlbridge.python.modules=example_udfs \
 *   --class dlbridge.examples.PythonTransformerExample <examples jar> [fit <pipelineDir> <resultDir> | load <pipelineDir> <resultDir>]
 * }}}
 * (several commands, e.g. `fit <dir> <dir> load <dir> <dir>`, run one after the other)
 * `fit` (the default) builds and saves the pipeline; `load` loads a saved one (for example saved
 * from PySpark). Both write the transformed rows as Parquet to `resultDir` when given.
 */
object PythonTransformerExample {

  def main(args: Array[String]): Unit = {
    val spark = SparkSession.builder().appName("dlbridge PythonTransformer example").getOrCreate()
    try FitOrLoad.commands(args.toSeq).foreach(run(spark, _))
    finally spark.stop()
  }

  /** The input: x = 0, 0.001, ..., 9.999 over four partitions. */
  def input(spark: SparkSession): DataFrame =
    spark.range(0, 10000, 1, 4).select((col("id") / 1000.0).as("x"))

  private def run(spark: SparkSession, cli: FitOrLoad): Unit = {
    val model = cli.pipeline {
      val stage = new PythonTransformer().setFunction("polynomial")
        .setFunctionParams("""{"coefficients": [1.0, -2.0, 0.5]}""")
        .setInputCol("x").setOutputCol("y")
      new Pipeline().setStages(Array(stage)).fit(input(spark))
    }
    val result = model.transform(input(spark))
    cli.writeResult(result)
    result.show(5)
    val total = result.agg(sum("y")).head().getDouble(0)
    println(f"dlbridge example (${cli.mode}): sum of y = 1 - 2x + 0.5x^2 over 10000 rows = $total%.6f")
  }
}
