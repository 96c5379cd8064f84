package dlbridge.examples

import dlbridge.ml.{PythonEstimator, PythonModel}

import org.apache.spark.ml.evaluation.BinaryClassificationEvaluator
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions.{col, desc, lit, mean, randn, sum, when}

/**
 * Anomaly detection from Scala with a user's own Keras autoencoder, written in Python
 * (examples/python/anomaly_autoencoder.py) and trained by dlbridge's parameter server, used as the
 * Spark ML estimator `PythonEstimator` (function `anomaly_autoencoder`). The fitted `PythonModel`
 * adds an anomaly score: each row's reconstruction error.
 *
 * {{{
 * spark-submit --master "local[2]" --jars <dlbridge jar> --py-files examples/python/anomaly_autoencoder.py \
 *   --conf spark.dlbridge.python.modules=anomaly_autoencoder \
 *   --class dlbridge.examples.AnomalyExample <examples jar> <model dir> [epochs]
 * }}}
 * It generates 2000 rows of 8 correlated features with 20 injected anomalies (the same rows as
 * examples/python/anomaly_pyspark.py), fits, saves and reloads the model, and prints the mean
 * score of normal and anomalous rows, the ROC AUC and the anomalies among the 20 highest scores.
 * `epochs` defaults to 10.
 */
object AnomalyExample {

  val Features: Array[String] = Array.tabulate(8)(j => s"x$j")
  val Rows = 2000
  val AnomalyEvery = 100 // rows with id % 100 == 7 are anomalies: 20 of 2000

  def main(args: Array[String]): Unit = {
    require(args.nonEmpty, "usage: AnomalyExample <model dir> [epochs]")
    val spark = SparkSession.builder().appName("dlbridge anomaly (Scala)").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try run(spark, args(0), args.lift(1).map(_.toInt).getOrElse(10))
    finally spark.stop()
  }

  /** Normal rows x_j = cos(j) z1 + sin(j) z2 + noise; anomalies x_j ~ N(0, 1), uncorrelated (seeded, two partitions). */
  def sample(spark: SparkSession): DataFrame = {
    val base = spark.range(0, Rows, 1, 2).select(col("id"), (col("id") % AnomalyEvery === 7).as("injected"),
      randn(11).as("z1"), randn(12).as("z2"))
    val features = Features.zipWithIndex.map { case (name, j) =>
      when(col("injected"), randn(200L + j))
        .otherwise(lit(math.cos(j)) * col("z1") + lit(math.sin(j)) * col("z2") + lit(0.1) * randn(100L + j)).as(name)
    }
    base.select(col("id") +: col("injected").cast("double").as("anomaly") +: features.toSeq: _*)
  }

  private def say(line: String): Unit = println(s"dlbridge anomaly (Scala): $line")

  private def report(scored: DataFrame, what: String): Unit = {
    val means = scored.groupBy("anomaly").agg(mean("score")).collect().map(r => r.getDouble(0) -> r.getDouble(1)).toMap
    val auc = new BinaryClassificationEvaluator().setRawPredictionCol("score").setLabelCol("anomaly").evaluate(scored)
    val k = Rows / AnomalyEvery
    val found = scored.orderBy(desc("score")).limit(k).agg(sum("anomaly")).head().getDouble(0)
    say(f"$what: mean score normal ${means(0.0)}%.4f, anomalies ${means(1.0)}%.4f")
    say(f"$what: ROC AUC $auc%.4f, anomalies among the $k highest scores: ${found.toInt}/$k")
  }

  private def run(spark: SparkSession, dir: String, epochs: Int): Unit = {
    val data = sample(spark).cache()
    say(s"${data.count()} rows of ${Features.length} features, " +
      s"${data.agg(sum("anomaly")).head().getDouble(0).toInt} anomalies injected")
    val estimator = new PythonEstimator().setFunction("anomaly_autoencoder")
      .setFunctionParams(s"""{"epochs": $epochs, "seed": 1}""")
      .setInputCols(Features).setOutputCol("score")
    say(s"fitting the autoencoder with the parameter server ($epochs epochs, 2 workers)")
    val started = System.nanoTime()
    val model = estimator.fit(data)
    model.write.overwrite().save(dir)
    val losses = spark.read.option("multiLine", "true").json(s"$dir/data/history.json").head()
      .getAs[scala.collection.Seq[Double]]("loss")
    say(f"fitted in ${(System.nanoTime() - started) / 1e9}%.1f s; state files ${model.stateFiles.mkString(", ")}")
    say("loss per epoch " + losses.map(l => f"$l%.4f").mkString(" "))
    report(model.transform(data), "scores")
    report(PythonModel.load(dir).transform(data), "after save/load")
  }
}
