package dlbridge.ml

import dlbridge.SparkSessionSuite

import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator
import org.apache.spark.ml.linalg.Vector
import org.apache.spark.ml.tuning.{CrossValidator, CrossValidatorModel, ParamGridBuilder}
import org.scalatest.funsuite.AnyFunSuite

class KerasTuningSuite extends AnyFunSuite with SparkSessionSuite {

  test("CrossValidator with parallelism 2 over optimizerOptions and epochs; tuned model saved and loaded") {
    val (train, test) = Digits.trainTest(spark)
    val est = new KerasEstimator().setHiddenLayers(Array(32)).setBatchSize(32).setSeed(1).setVerbose(0)
    val grid = new ParamGridBuilder()
      .addGrid(est.optimizerOptions, Array("""{"learning_rate": 0.01}""", """{"learning_rate": 0.00001}"""))
      .addGrid(est.epochs, Array(2))
      .build()
    val cv = new CrossValidator().setEstimator(est).setEstimatorParamMaps(grid)
      .setEvaluator(new MulticlassClassificationEvaluator().setMetricName("accuracy"))
      .setNumFolds(2).setParallelism(2).setSeed(5)
    val tuned = cv.fit(train)
    assert(tuned.avgMetrics.length == 2)
    assert(tuned.avgMetrics(0) > tuned.avgMetrics(1) + 0.2, tuned.avgMetrics.mkString(", "))
    val best = tuned.bestModel.asInstanceOf[KerasModel]
    assert(best.getOptimizerOptions == """{"learning_rate": 0.01}""")
    val dir = tempDir("dlbridge-cv").resolve("cv").toString
    tuned.write.overwrite().save(dir)
    val loaded = CrossValidatorModel.load(dir).bestModel.asInstanceOf[KerasModel]
    val a = best.transform(test).select("probability").collect().map(_.getAs[Vector](0).toArray)
    val b = loaded.transform(test).select("probability").collect().map(_.getAs[Vector](0).toArray)
    a.zip(b).foreach { case (x, y) => x.zip(y).foreach { case (u, v) => assert(math.abs(u - v) <= 1e-6) } }
  }
}
