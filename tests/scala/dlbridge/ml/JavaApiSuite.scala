package dlbridge.ml

import dlbridge.SparkSessionSuite

import org.scalatest.funsuite.AnyFunSuite

class JavaApiSuite extends AnyFunSuite with SparkSessionSuite {
  test("PythonTransformer from Java") {
    val sum = JavaPythonTransformerExample.sumPlusK(spark, 0.5)
    assert(math.abs(sum - ((0 until 100).sum + 100 * 0.5)) < 1e-9)
  }

  test("KerasEstimator from Java") {
    val (train, test) = Digits.trainTest(spark)
    val accuracy = JavaKerasExample.trainAndEvaluate(train, test, 3)
    assert(accuracy >= 0.85, s"accuracy $accuracy")
  }
}
