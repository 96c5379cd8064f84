package dlbridge.python

import java.util.concurrent.TimeUnit

import scala.concurrent.{Await, Future}
import scala.concurrent.ExecutionContext.Implicits.global
import scala.concurrent.duration._
import scala.util.Try

import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions.{array, col, rand}
import org.scalatest.funsuite.AnyFunSuite

import dlbridge.ml.{KerasEstimator, PythonTransformer}

/** A companion that stops answering or dies: calls fail with a clear error, nothing leaks, the next call works. */
class BridgeFailureSuite extends AnyFunSuite {

  private def withSession(conf: (String, String)*)(body: SparkSession => Unit): Unit = {
    dlbridge.SharedSparkSession.stop()  // one SparkContext per JVM: this suite needs its own conf
    val builder = SparkSession.builder().master("local[2]").appName("bridge-failure")
      .config("spark.ui.enabled", "false")
      .config("spark.task.maxFailures", "1")
      .config("spark.python.worker.reuse", "true")
      .config("spark.dlbridge.python.modules", "dlbridge_test_udfs")
    conf.foreach { case (k, v) => builder.config(k, v) }
    val spark = builder.getOrCreate()
    try body(spark) finally spark.stop()
  }

  private def signal(pid: Long, name: String): Unit =
    assert(new ProcessBuilder("kill", s"-$name", pid.toString).inheritIO().start().waitFor() == 0)

  private def awaitExit(pid: Long): Unit =
    ProcessHandle.of(pid).ifPresent(p => Try(p.onExit().get(30, TimeUnit.SECONDS)))

  /** Runs `plus_k` through the backend (outputType and buildUdf calls) and returns the companion's pid. */
  private def plusOne(spark: SparkSession): Long = {
    val t = new PythonTransformer().setFunction("plus_k").setInputCol("id").setOutputCol("y")
    assert(t.transform(spark.range(4)).agg("y" -> "sum").head().getDouble(0) == 10.0)
    PythonBridge.companionPid(spark.sparkContext)
  }

  test("an invalid callTimeout names the key and the fix, before any companion starts") {
    withSession(BridgeConf.CallTimeout -> "soon") { spark =>
      val e = intercept[IllegalArgumentException](plusOne(spark))
      assert(e.getMessage.contains(s"${BridgeConf.CallTimeout} must be a positive duration") &&
        e.getMessage.contains("received soon") && e.getMessage.contains("Fix:"), e.getMessage)
      assert(PythonBridge.companionPid(spark.sparkContext) == -1)
    }
  }

  test("a call longer than callTimeout on a responsive companion is not cut") {
    withSession(BridgeConf.CallTimeout -> "2s") { spark =>
      val state = PythonBridge.backend(spark).fit("sleep_then_fit", """{"seconds": 7}""", spark.range(1).toDF(),
        "dlbridge_fit_timeout_test", null, "timeoutTest")
      assert(new String(state.get("slept.json"), "UTF-8") == "7.0")
    }
  }

  test("a stopped (SIGSTOP) companion fails the next call within callTimeout; the call after runs on a fresh one") {
    withSession(BridgeConf.CallTimeout -> "5s") { spark =>
      val stopped = plusOne(spark)
      signal(stopped, "STOP")
      try {
        val started = System.nanoTime()
        val e = intercept[PythonBackendException](plusOne(spark))
        val seconds = (System.nanoTime() - started) / 1e9
        assert(seconds >= 4.5 && seconds < 5 + 2 + 5, s"failed after $seconds s")
        Seq(s"companion pid $stopped", "outputType(plus_k)", "5000 ms", BridgeConf.CallTimeout,
          "SIGKILL", "Last output of the companion", "Fix:").foreach { part =>
          assert(e.getMessage.contains(part), s"'$part' not in: ${e.getMessage}")
        }
        assert(!ProcessHandle.of(stopped).map[Boolean](_.isAlive).orElse(false), "the stopped companion was not killed")
      } finally Try(signal(stopped, "CONT"))
      val fresh = plusOne(spark)
      assert(fresh > 0 && fresh != stopped)
      assert(spark.range(7).count() == 7)
    }
  }

  test("a companion killed (SIGKILL) between calls is replaced on the next call") {
    withSession() { spark =>
      val killed = plusOne(spark)
      signal(killed, "KILL")
      awaitExit(killed)
      val fresh = plusOne(spark)
      assert(fresh > 0 && fresh != killed)
    }
  }

  private def randomData(spark: SparkSession): DataFrame =
    spark.range(0, 2000, 1, 2).select(array(rand(1), rand(2), rand(3)).as("features"),
      (rand(4) > 0.5).cast("double").as("label"))

  private def cachedViews(spark: SparkSession): Seq[String] =
    spark.catalog.listTables().collect().map(_.name).filter(_.startsWith("dlbridge_fit_")).toSeq

  test("a companion killed mid-fit leaves nothing cached; the next fit in the same SparkContext works") {
    withSession() { spark =>
      val sc = spark.sparkContext
      val data = randomData(spark)
      val estimator = new KerasEstimator().setHiddenLayers(Array(4)).setBatchSize(16).setNumWorkers(2)
      val fit = Future(estimator.copy(org.apache.spark.ml.param.ParamMap.empty).setEpochs(10000).fit(data))
      val deadline = System.nanoTime() + 240.seconds.toNanos
      while (sc.getPersistentRDDs.isEmpty && !fit.isCompleted && System.nanoTime() < deadline) Thread.sleep(100)
      assert(sc.getPersistentRDDs.nonEmpty, s"the fit never cached its input: ${fit.value}")
      assert(cachedViews(spark).size == 1)
      Thread.sleep(2000) // into the first epoch
      val companion = PythonBridge.companionPid(sc)
      signal(companion, "KILL")
      val e = intercept[PythonBackendException](Await.result(fit, 120.seconds))
      assert(e.getMessage.contains(s"companion pid $companion") && e.getMessage.contains("fit(keras)"),
        e.getMessage)
      assert(sc.getPersistentRDDs.isEmpty, s"still cached: ${sc.getPersistentRDDs}")
      assert(cachedViews(spark).isEmpty, s"views left: ${cachedViews(spark)}")
      val model = estimator.setEpochs(1).fit(data)
      assert(model.transform(data).count() == 2000)
      assert(sc.getPersistentRDDs.isEmpty && cachedViews(spark).isEmpty)
    }
  }
}
