package dlbridge.ml

import java.nio.file.Files

import dlbridge.SparkSessionSuite

import org.apache.commons.io.FileUtils
import org.scalatest.funsuite.AnyFunSuite

class JavaApiSuite extends AnyFunSuite with SparkSessionSuite {

  override protected def extraConf: Map[String, String] =
    Map("spark.dlbridge.python.modules" -> "dlbridge_test_udfs,centroids")

  test("PythonTransformer from Java") {
    val sum = JavaPythonTransformerExample.sumPlusK(spark, 0.5)
    assert(math.abs(sum - ((0 until 100).sum + 100 * 0.5)) < 1e-9)
  }

  test("PythonEstimator and PythonModel from Java: fit, transform, save, load") {
    val dir = Files.createTempDirectory("dlbridge-java-estimator")
    try {
      val Array(accuracy, loadedAccuracy, identical) =
        JavaPythonEstimatorExample.fitSaveLoad(spark, dir.resolve("model").toString)
      assert(accuracy >= 0.95, s"accuracy $accuracy")
      assert(math.abs(loadedAccuracy - accuracy) < 1e-12)
      assert(identical == 1.0, "the loaded model's predictions differ")
    } finally FileUtils.deleteDirectory(dir.toFile)
  }

  test("KerasEstimator from Java") {
    val (train, test) = Digits.trainTest(spark)
    val accuracy = JavaKerasExample.trainAndEvaluate(train, test, 3)
    assert(accuracy >= 0.85, s"accuracy $accuracy")
  }
}
