package dlbridge.ml

import dlbridge.SparkSessionSuite

import org.apache.spark.ml.functions.vector_to_array
import org.apache.spark.ml.linalg.{Vector, Vectors}
import org.apache.spark.sql.{DataFrame, Row}
import org.apache.spark.sql.functions.col
import org.apache.spark.sql.streaming.{StreamingQuery, Trigger}
import org.scalatest.funsuite.AnyFunSuite

/** Structured Streaming from Scala: file source -> KerasModel / PythonTransformer -> Parquet sink. */
class StreamingSuite extends AnyFunSuite with SparkSessionSuite {

  private val rowsPerFile = 200

  private lazy val model: KerasModel = {
    val rng = new scala.util.Random(5)
    val rows = (0 until 600).map { _ =>
      val x = Array.fill(4)(rng.nextGaussian())
      (Vectors.dense(x), if (x(0) > 0.5) 2.0 else if (x(0) > -0.5) 1.0 else 0.0)
    }
    val train = spark.createDataFrame(rows).toDF("features", "label")
    new KerasEstimator().setHiddenLayers(Array(8)).setEpochs(1).setVerbose(0).fit(train).setRawOutputCol("raw")
  }

  /** Two Parquet files of `id`, `x`, `vec` (Vector) and `arr` (array<double>); returns the directory. */
  private def writeInputs(): String = {
    val dir = tempDir("dlbridge-stream-in").resolve("data").toString
    val rng = new scala.util.Random(9)
    for (file <- 0 until 2) {
      val rows = (0 until rowsPerFile).map { i =>
        val x = Array.fill(4)(rng.nextGaussian())
        (file * rowsPerFile + i.toLong, x(0), Vectors.dense(x))
      }
      spark.createDataFrame(rows).toDF("id", "x", "vec").withColumn("arr", vector_to_array(col("vec")))
        .coalesce(1).write.mode("append").parquet(dir)
    }
    dir
  }

  private def stream(dir: String): DataFrame =
    spark.readStream.schema(spark.read.parquet(dir).schema).option("maxFilesPerTrigger", 1).parquet(dir)

  /** Runs `frame` into a Parquet sink with `trigger` until two micro-batches with data ran; reads it back. */
  private def runToParquet(frame: DataFrame, trigger: Trigger): DataFrame = {
    val out = tempDir("dlbridge-stream-out").toString
    val query: StreamingQuery = frame.writeStream.format("parquet").option("path", s"$out/data")
      .option("checkpointLocation", s"$out/checkpoint").trigger(trigger).start()
    def batchesWithData: Int = query.recentProgress.count(_.numInputRows > 0)
    val deadline = System.nanoTime() + 300L * 1000 * 1000 * 1000
    while (query.isActive && batchesWithData < 2 && System.nanoTime() < deadline) query.awaitTermination(500)
    query.stop()
    query.exception.foreach(e => fail(s"streaming query failed: ${e.getMessage}"))
    assert(batchesWithData >= 2, "one file per trigger: two micro-batches with data")
    spark.read.parquet(s"$out/data")
  }

  private def assertSameScores(streamed: DataFrame, batch: DataFrame): Unit = {
    val got = streamed.orderBy("id").collect()
    val want = batch.orderBy("id").collect()
    assert(got.length == 2 * rowsPerFile && got.map(_.getLong(0)).sameElements(want.map(_.getLong(0))))
    got.zip(want).foreach { case (g, w) =>
      assert(g.getDouble(1) == w.getDouble(1))
      val (gp, wp) = (g.getAs[Vector](2).toArray, w.getAs[Vector](2).toArray)
      gp.zip(wp).foreach { case (a, b) => assert(math.abs(a - b) < 1e-6) }
      g.getSeq[Float](3).zip(w.getSeq[Float](3)).foreach { case (a, b) => assert(math.abs(a - b) < 1e-6) }
    }
  }

  private val outputs = Seq("id", "prediction", "probability", "raw")

  test("KerasModel scores a Vector stream with availableNow, as in batch") {
    val dir = writeInputs()
    val m = model.copy(org.apache.spark.ml.param.ParamMap.empty).setFeaturesCol("vec")
    val streamed = runToParquet(m.transform(stream(dir)).select(outputs.map(col): _*), Trigger.AvailableNow())
    assertSameScores(streamed, m.transform(spark.read.parquet(dir)).select(outputs.map(col): _*))
  }

  test("KerasModel scores an array<double> stream with a processing-time trigger, as in batch") {
    val dir = writeInputs()
    val m = model.copy(org.apache.spark.ml.param.ParamMap.empty).setFeaturesCol("arr")
    val streamed = runToParquet(m.transform(stream(dir)).select(outputs.map(col): _*),
      Trigger.ProcessingTime("1 second"))
    assertSameScores(streamed, m.transform(spark.read.parquet(dir)).select(outputs.map(col): _*))
  }

  test("PythonTransformer maps a stream that carries a Vector column") {
    val dir = writeInputs()
    val t = new PythonTransformer().setFunction("plus_k").setParams("""{"k": 0.5}""").setInputCol("x").setOutputCol("y")
    val streamed = runToParquet(t.transform(stream(dir)), Trigger.ProcessingTime("1 second"))
    val rows: Array[Row] = streamed.select("x", "y", "vec").collect()
    assert(rows.length == 2 * rowsPerFile)
    rows.foreach(r => assert(math.abs(r.getDouble(1) - r.getDouble(0) - 0.5) < 1e-12 &&
      r.getAs[Vector](2)(0) == r.getDouble(0)))
  }
}
