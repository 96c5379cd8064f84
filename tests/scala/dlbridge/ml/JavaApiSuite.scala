package dlbridge.ml

import java.nio.file.Files

import dlbridge.SparkSessionSuite

import scala.sys.process._

import org.apache.commons.io.FileUtils
import org.apache.spark.sql.functions.array
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

  test("KerasModel.fromSavedModel from Java: a tf.Module's signature, endpoint errors listing the endpoints") {
    val dir = Files.createTempDirectory("dlbridge-java-savedmodel")
    try {
      val path = dir.resolve("linear").toString // y = 0.5 x0 - 0.25 x1 + 2 x2 + 0.1, signature "predict"
      val python = sys.env.getOrElse("PYSPARK_PYTHON", "python3")
      Process(Seq(python, "-c", "import sys, tensorflow as tf\n" +
        "class Linear(tf.Module):\n" +
        "    def __init__(self):\n        self.w = tf.Variable([[0.5], [-0.25], [2.0]])\n" +
        "    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])\n" +
        "    def __call__(self, x):\n        return {'y': tf.matmul(x, self.w) + 0.1}\n" +
        "m = Linear()\ntf.saved_model.save(m, sys.argv[1], signatures={'predict': m.__call__})\n", path), None,
        "TF_CPP_MIN_LOG_LEVEL" -> "2").!!
      val xs = Seq((1.0, 2.0, 3.0), (-1.0, 0.5, 0.0), (0.0, 0.0, 0.0))
      val data = spark.createDataFrame(xs).select(array("_1", "_2", "_3").as("features"))
      val predictions = JavaSavedModelExample.predict(path, "predict", data)
      val expected = xs.map { case (a, b, c) => 0.5 * a - 0.25 * b + 2 * c + 0.1 }
      assert(predictions.length == 3)
      predictions.zip(expected).foreach { case (p, e) => assert(math.abs(p - e) < 1e-5, s"$p vs $e") }
      val message = JavaSavedModelExample.defaultEndpointError(path)
      assert(message.contains(s"SavedModel '$path' has no endpoint 'serving_default'; its endpoints: predict"), message)
      val missing = JavaSavedModelExample.defaultEndpointError(dir.resolve("none").toString)
      assert(missing.contains(s"SavedModel path '${dir.resolve("none")}' does not exist"), missing)
    } finally FileUtils.deleteDirectory(dir.toFile)
  }
}
