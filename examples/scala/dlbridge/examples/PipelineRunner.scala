package dlbridge.examples

import org.apache.spark.ml.PipelineModel
import org.apache.spark.sql.SparkSession

/**
 * Loads saved PipelineModels (from Scala, Java or PySpark), transforms a Parquet input with each and
 * writes the result as Parquet: `PipelineRunner <pipeline dir> <input parquet> <output parquet> [...]`,
 * one triple per pipeline, all in one application.
 */
object PipelineRunner {
  def main(args: Array[String]): Unit = {
    require(args.nonEmpty && args.length % 3 == 0,
      "usage: PipelineRunner <pipeline dir> <input parquet> <output parquet> [<pipeline dir> <input> <output> ...]")
    val spark = SparkSession.builder().appName("dlbridge pipeline runner").getOrCreate()
    try {
      args.grouped(3).foreach { case Array(pipeline, input, output) =>
        PipelineModel.load(pipeline).transform(spark.read.parquet(input)).write.mode("overwrite").parquet(output)
      }
    } finally spark.stop()
  }
}
