package dlbridge.python

import java.nio.file.Files
import java.util.concurrent.{Callable, Executors, TimeUnit}

import org.apache.spark.sql.SparkSession
import org.apache.spark.sql.functions.col
import org.scalatest.funsuite.AnyFunSuite

import dlbridge.ml.PythonTransformer

/** The companion backend's life: started on first use, shared by threads, gone after stop. */
class CompanionLifecycleSuite extends AnyFunSuite {

  private def session(conf: (String, String)*): SparkSession = {
    dlbridge.SharedSparkSession.stop()  // one SparkContext per JVM: this suite needs its own conf
    val builder = SparkSession.builder().master("local[2]").appName("companion-lifecycle")
      .config("spark.ui.enabled", "false")
      .config("spark.dlbridge.python.modules", "dlbridge_test_udfs")
    conf.foreach { case (k, v) => builder.config(k, v) }
    builder.getOrCreate()
  }

  private def eventually(timeoutMs: Long)(condition: => Boolean): Boolean = {
    val deadline = System.currentTimeMillis() + timeoutMs
    var ok = condition
    while (!ok && System.currentTimeMillis() < deadline) { Thread.sleep(100); ok = condition }
    ok
  }

  private def assertStartFails(conf: (String, String)*)(expected: String*): Unit = {
    val spark = session(conf: _*)
    try {
      val t = new PythonTransformer().setFunction("plus_k").setInputCol("id")
      val e = intercept[PythonBackendException](t.transform(spark.range(3)))
      expected.foreach(part => assert(e.getMessage.contains(part), s"'$part' not in: ${e.getMessage}"))
      assert(PythonBridge.companionPid(spark.sparkContext) == -1)
      assert(!spark.sparkContext.isStopped, "a failing backend must not stop the SparkContext")
      assert(spark.range(5).count() == 5)
    } finally spark.stop()
  }

  test("the companion starts on first use, serves two threads, and is gone after spark.stop()") {
    val spark = session()
    try {
      assert(PythonBridge.companionPid(spark.sparkContext) == -1, "nothing may start before first use")
      val df = spark.range(0, 2000, 1, 4).select(col("id").cast("double").as("x"))
      val pool = Executors.newFixedThreadPool(2)
      val sums = try {
        val futures = Seq(1.0, 2.0).map { k =>
          pool.submit(new Callable[Double] {
            override def call(): Double = new PythonTransformer().setFunction("plus_k")
              .setParams(s"""{"k": $k}""").setInputCol("x").setOutputCol("y")
              .transform(df).agg("y" -> "sum").head().getDouble(0)
          })
        }
        futures.map(_.get(300, TimeUnit.SECONDS))
      } finally pool.shutdown()
      val base = (0 until 2000).sum.toDouble
      assert(math.abs(sums(0) - (base + 2000 * 1.0)) < 1e-6)
      assert(math.abs(sums(1) - (base + 2000 * 2.0)) < 1e-6)
      val pid = PythonBridge.companionPid(spark.sparkContext)
      assert(pid > 0)
      val process = ProcessHandle.of(pid)
      assert(process.isPresent && process.get.isAlive)
      assert(process.get.info().commandLine().orElse("").contains("dlbridge.backend"))
      spark.stop()
      assert(eventually(15000)(!ProcessHandle.of(pid).map[Boolean](_.isAlive).orElse(false)),
        s"companion $pid still alive after spark.stop()")
    } finally spark.stop()
  }

  test("a missing interpreter is reported with the fix, and the SparkContext keeps running") {
    assertStartFails("spark.pyspark.driver.python" -> "/nonexistent/bin/python3")(
      "/nonexistent/bin/python3", "Fix:", "pip install dlbridge")
  }

  test("an interpreter without dlbridge: exit code, output tail and fix, SparkContext intact") {
    // An interpreter without our packages: -I ignores PYTHONPATH, -S skips site-packages.
    val bare = Files.createTempFile("bare-python", ".sh")
    try {
      Files.writeString(bare, "#!/bin/sh\nexec python3 -I -S \"$@\"\n")
      bare.toFile.setExecutable(true)
      assertStartFails("spark.pyspark.driver.python" -> bare.toString)(
        bare.toString, "exited with code 1", "No module named 'dlbridge'", "pip install dlbridge")
    } finally Files.deleteIfExists(bare)
  }

  test("a backend module that fails to import fails the start with its traceback, SparkContext intact") {
    assertStartFails("spark.dlbridge.python.modules" -> "dlbridge_no_such_module")(
      "dlbridge_no_such_module", "Traceback", "cannot import")
  }

  test("a start that exceeds the timeout is reported, names the conf key, leaves no process") {
    assertStartFails("spark.dlbridge.python.startTimeout" -> "1ms")(
      "did not register within 1 ms", "spark.dlbridge.python.startTimeout")
  }
}
