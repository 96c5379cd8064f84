package dlbridge.examples

import dlbridge.ml.{KerasEstimator, KerasModel}

import org.apache.spark.ml.{Pipeline, PipelineModel}
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator
import org.apache.spark.ml.feature.VectorAssembler
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions.col

/**
 * Trains a Keras MLP on scikit-learn's digits (the CSV that ships inside scikit-learn), evaluates
 * its accuracy, saves the pipeline, loads it back and predicts.
 *
 * {{{
 * spark-submit --master "local[2]" --jars <dlbridge jar> --class dlbridge.examples.DigitsExample \
 *   <examples jar> <path of sklearn/datasets/data/digits.csv.gz> <pipeline dir> [epochs] [mode]
 * }}}
 * `epochs` defaults to 14 and `mode` (hogwild, async or sync) to hogwild.
 */
object DigitsExample {

  def main(args: Array[String]): Unit = {
    require(args.length >= 2, "usage: DigitsExample <digits.csv.gz> <pipeline dir> [epochs] [mode]")
    val spark = SparkSession.builder().appName("dlbridge digits (Scala)").getOrCreate()
    try run(spark, args(0), args(1), args.lift(2).map(_.toInt).getOrElse(14), args.lift(3).getOrElse("hogwild"))
    finally spark.stop()
  }

  /** 64 pixel columns scaled to [0, 1] and a double label. */
  def load(spark: SparkSession, csv: String): DataFrame = {
    val raw = spark.read.option("inferSchema", "true").csv(csv)
    val pixels = raw.columns.take(64).map(c => (col(c) / 16.0).as(c))
    raw.select(pixels :+ col(raw.columns(64)).cast("double").as("label"): _*)
  }

  private def run(spark: SparkSession, csv: String, dir: String, epochs: Int, mode: String): Unit = {
    val data = load(spark, csv)
    val Array(train, test) = data.randomSplit(Array(0.8, 0.2), seed = 7)
    val assembler = new VectorAssembler().setInputCols(data.columns.take(64)).setOutputCol("features")
    val estimator = new KerasEstimator()
      .setFeaturesCol("features").setLabelCol("label")
      .setHiddenLayers(Array(64))
      .setOptimizer("adam").setOptimizerOptions("""{"learning_rate": 0.005}""")
      .setEpochs(epochs).setBatchSize(32).setMode(mode).setNumWorkers(2).setSeed(1)
    val model = new Pipeline().setStages(Array(assembler, estimator)).fit(train)
    val evaluator = new MulticlassClassificationEvaluator().setMetricName("accuracy")
    val accuracy = evaluator.evaluate(model.transform(test))
    val summary = model.stages.last.asInstanceOf[KerasModel].summary
    model.write.overwrite().save(dir)
    val reloaded = PipelineModel.load(dir)
    val reloadedAccuracy = evaluator.evaluate(reloaded.transform(test))
    reloaded.transform(test).select("label", "prediction", "probability").show(5, truncate = 60)
    println(f"dlbridge digits (Scala): loss per epoch ${summary.lossHistory.map(l => f"$l%.3f").mkString(" ")}")
    println(f"dlbridge digits (Scala): test accuracy $accuracy%.4f, after save/load $reloadedAccuracy%.4f")
  }
}
