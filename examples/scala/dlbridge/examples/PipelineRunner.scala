package dlbridge.examples

import org.apache.spark.ml.PipelineModel
import org.apache.spark.sql.SparkSession

/**
 * Loads a saved PipelineModel (from Scala, Java or PySpark), transforms a Parquet input and
 * writes the result as Parquet: `PipelineRunner <pipeline dir> <input parquet> <output parquet>`.
 */
object PipelineRunner {
  def main(args: Array[String]): Unit = {
    require(args.length == 3, "usage: PipelineRunner <pipeline dir> <input parquet> <output parquet>")
    val spark = SparkSession.builder().appName("dlbridge pipeline runner").getOrCreate()
    try {
      val model = PipelineModel.load(args(0))
      model.transform(spark.read.parquet(args(1))).write.mode("overwrite").parquet(args(2))
    } finally spark.stop()
  }
}
