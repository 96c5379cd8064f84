package dlbridge.ml

import scala.sys.process._

import org.apache.spark.ml.feature.VectorAssembler
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions.col

/** scikit-learn's digits data (8x8 images, 10 classes), read by Spark from the CSV sklearn ships. */
object Digits {

  /** Path of `digits.csv.gz` inside the scikit-learn of the project's interpreter. */
  lazy val csvPath: String = {
    val python = sys.env.getOrElse("PYSPARK_PYTHON", "python3")
    Seq(python, "-c", "import os, sklearn.datasets as d; " +
      "print(os.path.join(os.path.dirname(d.__file__), 'data', 'digits.csv.gz'))").!!.trim
  }

  /** Columns `features` (Vector of 64 pixels scaled to [0, 1]) and `label` (double), split 80/20. */
  def trainTest(spark: SparkSession): (DataFrame, DataFrame) = {
    val raw = spark.read.option("inferSchema", "true").csv(csvPath)
    val pixels = raw.columns.take(64)
    val scaled = raw.select(pixels.map(c => (col(c) / 16.0).as(c)) :+ col(raw.columns(64)).cast("double").as("label"): _*)
    val data = new VectorAssembler().setInputCols(pixels).setOutputCol("features").transform(scaled)
      .select("features", "label")
    val Array(train, test) = data.randomSplit(Array(0.8, 0.2), seed = 7)
    (train.cache(), test.cache())
  }
}
