package dlbridge.ml

import dlbridge.SparkSessionSuite
import dlbridge.python.{PythonBackendException, PythonBridge}

import org.apache.spark.sql.functions.col
import org.apache.spark.sql.types.DoubleType
import org.scalatest.funsuite.AnyFunSuite

class PythonTransformerSuite extends AnyFunSuite with SparkSessionSuite {

  test("a registered Python function runs on the executors from Scala") {
    val df = spark.range(0, 1000, 1, 4).select(col("id").cast("double").as("x"))
    val t = new PythonTransformer().setFunction("plus_k").setParams("""{"k": 2.5}""")
      .setInputCol("x").setOutputCol("y")
    val out = t.transform(df)
    assert(out.schema("y").dataType == DoubleType)
    val rows = out.collect()
    assert(rows.length == 1000)
    rows.foreach(r => assert(math.abs(r.getDouble(1) - (r.getDouble(0) + 2.5)) < 1e-12))
  }

  test("a Python exception surfaces with its type, message and traceback") {
    val df = spark.range(0, 10).select(col("id").cast("double").as("x"))
    val t = new PythonTransformer().setFunction("explode_on_value").setParams("""{"bad": 3.0}""")
      .setInputCol("x").setOutputCol("y")
    val e = intercept[Exception](t.transform(df).collect())
    val text = Iterator.iterate[Throwable](e)(_.getCause).takeWhile(_ != null).map(_.getMessage).mkString("\n")
    assert(text.contains("ZeroDivisionError"))
    assert(text.contains("met the bad value 3.0"))
    assert(text.contains("Traceback"))
  }

  test("bad params are rejected before any job runs") {
    val df = spark.range(0, 10).select(col("id").cast("double").as("x"))
    val t = new PythonTransformer().setFunction("plus_k").setParams("""{"kk": 1}""")
      .setInputCol("x").setOutputCol("y")
    val e = intercept[PythonBackendException](t.transform(df))
    assert(e.getMessage.contains("has no param 'kk'"))
    assert(e.getMessage.contains("k: float = 1.0"))
    val typed = intercept[PythonBackendException](t.setParams("""{"k": "two"}""").transform(df))
    assert(typed.getMessage.contains("param 'k' expects int or float"))
    val unknown = intercept[PythonBackendException](t.setFunction("nope").setParams("{}").transform(df))
    assert(unknown.getMessage.contains("Registered: ["))
    assert(unknown.getMessage.contains("'plus_k'"))
    assert(PythonBridge.companionPid(spark.sparkContext) > 0)
  }
}
