package dlbridge.ml

import java.nio.file.Files

import dlbridge.SparkSessionSuite

import org.apache.spark.ml.linalg.Vectors
import org.apache.spark.sql.{DataFrame, Row}
import org.apache.spark.sql.types._
import org.scalatest.funsuite.AnyFunSuite

/** Bad data in Scala: handleInvalid in fit and transform, diverging training, corrupt model files. */
class KerasDirtyDataSuite extends AnyFunSuite with SparkSessionSuite {

  private val rows = 48
  private val internals = Seq("NullPointerException", "JsonParse", "Non-standard token")

  private def estimator: KerasEstimator = new KerasEstimator().setHiddenLayers(Array(4)).setEpochs(1)
    .setBatchSize(16).setNumWorkers(1).setSeed(1).setVerbose(0)

  /** `rows` clean rows of 4 features (array<`elementType`>, nullable elements) and a 0/1 label, plus `extra`. */
  private def frame(elementType: DataType, extra: Seq[Seq[java.lang.Double]] = Nil): DataFrame = {
    val rng = new scala.util.Random(0)
    val clean = Seq.fill(rows)(Seq.fill(4)(java.lang.Double.valueOf(rng.nextGaussian())))
    val data = (clean ++ extra).map(f => Row(f, if (f != null && f.head != null && f.head > 0) 1.0 else 0.0))
    val schema = StructType(Seq(StructField("features", ArrayType(DoubleType, containsNull = true)),
      StructField("label", DoubleType)))
    val df = spark.createDataFrame(spark.sparkContext.parallelize(data, 2), schema)
    df.withColumn("features", df("features").cast(ArrayType(elementType, containsNull = true)))
  }

  private lazy val model: KerasModel = estimator.fit(frame(FloatType))

  private def messageOf(body: => Any): String = {
    val e = intercept[Exception](body)
    val text = Iterator.iterate[Throwable](e)(_.getCause).takeWhile(_ != null).map(_.getMessage).mkString("\n")
    internals.foreach(i => assert(!text.contains(i), text))
    text
  }

  private def assertParts(text: String, parts: String*): Unit =
    parts.foreach(p => assert(text.contains(p), s"'$p' not in: $text"))

  test("nullable array<float> and array<double> transform like Vectors") {
    val floats = frame(FloatType)
    assert(floats.schema("features").dataType == ArrayType(FloatType, containsNull = true))
    val vectors = floats.withColumn("features", org.apache.spark.ml.functions.array_to_vector(floats("features")))
    val raw = Seq(floats, frame(DoubleType), vectors).map { df =>
      model.copy(model.extractParamMap()).setRawOutputCol("raw").transform(df).select("raw")
        .collect().map(_.getSeq[Float](0))
    }
    assert(raw.head.length == rows)
    for (other <- raw.tail; (a, b) <- raw.head.zip(other); (u, v) <- a.zip(b)) assert(math.abs(u - v) <= 1e-6)
  }

  test("a NaN feature fails fit naming the column, the count and the fix; skip trains on the rest") {
    val nan = Seq(Seq[java.lang.Double](1.0, Double.NaN, 0.0, 0.0))
    val text = messageOf(estimator.fit(frame(FloatType, nan)))
    assertParts(text, "featuresCol='features'", s"1 of ${rows + 1} row(s)", "handleInvalid='skip'")
    val skipped = estimator.setHandleInvalid("skip").fit(frame(FloatType, nan))
    assert(skipped.summary.metric("samples").head == rows)
  }

  test("transform: NaN, inf, null element and null row fail with error, are dropped with skip") {
    val bad = Seq(Seq[java.lang.Double](Double.NaN, 0.0, 0.0, 0.0), Seq[java.lang.Double](Double.PositiveInfinity,
      0.0, 0.0, 0.0), Seq[java.lang.Double](1.0, null, 0.0, 0.0), null)
    for ((row, found) <- bad.zip(Seq("NaN or infinite", "NaN or infinite", "a null element", "a null array"))) {
      val text = messageOf(model.transform(frame(DoubleType, Seq(row))).collect())
      assertParts(text, "featuresCol 'features' holds a row with", found, "handleInvalid='skip'")
    }
    val skip = model.copy(model.extractParamMap()).setHandleInvalid("skip")
    assert(skip.transform(frame(DoubleType, bad)).count() == rows)
    val nullVector = spark.createDataFrame(spark.sparkContext.parallelize(Seq(Row(Vectors.dense(1, 2, 3, 4)),
      Row(null))), StructType(Seq(StructField("features", org.apache.spark.ml.linalg.SQLDataTypes.VectorType))))
    assertParts(messageOf(model.transform(nullVector).collect()), "a null vector")
    assert(skip.transform(nullVector).count() == 1)
  }

  test("a diverging learning rate stops training with an error naming the epoch") {
    val df = frame(FloatType).selectExpr("features", "aggregate(features, 0D, (a, x) -> a + x) * 100 AS label")
    val text = messageOf(estimator.setTask("regression").setOptimizer("sgd").setEpochs(3).setBatchSize(8)
      .setOptimizerOptions("""{"learning_rate": 1e6}""").fit(df))
    assertParts(text, "training stopped in epoch", "diverged", "lower the learning rate")
  }

  test("a corrupt model file fails naming the user's path (fromFile and modelFile)") {
    val path = tempDir("dlbridge-dirty").resolve("broken.keras")
    Files.write(path, "not a zip archive".getBytes("UTF-8"))
    assertParts(messageOf(KerasModel.fromFile(path.toString)), s"KerasModel.fromFile path '$path'",
      "not a loadable Keras v3 .keras archive", "Fix")
    assertParts(messageOf(estimator.setModelFile(path.toString).fit(frame(FloatType))), s"modelFile '$path'",
      "not a loadable Keras v3 .keras archive")
  }

  test("Java: setHandleInvalid on both stages, and the fit error reaches Java") {
    val text = messageOf(JavaKerasExample.fitWithHandleInvalid(frame(FloatType, Seq(null)), "error"))
    assertParts(text, "featuresCol='features'", "handleInvalid='skip'")
    assert(JavaKerasExample.fitWithHandleInvalid(frame(FloatType, Seq(null)), "skip").getHandleInvalid == "skip")
  }
}
