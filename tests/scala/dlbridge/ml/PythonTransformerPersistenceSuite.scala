package dlbridge.ml

import java.nio.file.Files

import dlbridge.SparkSessionSuite

import org.apache.spark.ml.{Pipeline, PipelineModel}
import org.apache.spark.sql.functions.col
import org.scalatest.funsuite.AnyFunSuite

class PythonTransformerPersistenceSuite extends AnyFunSuite with SparkSessionSuite {

  test("params: defaults, copy and validation") {
    val t = new PythonTransformer()
    assert(t.getFunctionParams == "{}")
    assert(t.getOutputCol == t.uid + "__output")
    assert(t.uid.startsWith("pythonTransformer_"))
    assert(new PythonTransformer().uid != t.uid)
    val e = intercept[IllegalArgumentException](t.setFunctionParams("[1, 2]"))
    assert(e.getMessage.contains("functionParams expects a JSON object"))
    assert(e.getMessage.contains("received: [1, 2]"))
    val copied = t.setFunction("plus_k").copy(org.apache.spark.ml.param.ParamMap.empty)
    assert(copied.uid == t.uid && copied.getFunction == "plus_k")
  }

  test("read/write inside a Pipeline") {
    val df = spark.range(0, 100, 1, 2).select(col("id").cast("double").as("x"))
    val stage = new PythonTransformer().setFunction("plus_k").setParams("""{"k": 4.0}""")
      .setInputCol("x").setOutputCol("y")
    val model = new Pipeline().setStages(Array(stage)).fit(df)
    val dir = Files.createTempDirectory("dlbridge-pipeline").toString
    model.write.overwrite().save(dir)
    val loaded = PipelineModel.load(dir)
    val reloaded = loaded.stages.head.asInstanceOf[PythonTransformer]
    assert(reloaded.uid == stage.uid)
    assert(reloaded.getFunctionParams == """{"k": 4.0}""")
    loaded.transform(df).collect().foreach { r =>
      assert(math.abs(r.getDouble(1) - r.getDouble(0) - 4.0) < 1e-12)
    }
    org.apache.commons.io.FileUtils.deleteDirectory(new java.io.File(dir))
  }

  test("several input columns and input checks before a job") {
    val df = spark.range(0, 50).select(col("id").cast("double").as("a"), (col("id") * 2).as("b"))
    val t = new PythonTransformer().setFunction("weighted_sum")
      .setParams("""{"weights": [1.0, 0.5]}""").setInputCols(Array("a", "b")).setOutputCol("s")
    t.transform(df).collect().foreach(r => assert(math.abs(r.getDouble(2) - 2 * r.getDouble(0)) < 1e-9))
    val missing = intercept[IllegalArgumentException](t.setInputCols(Array("a", "nope")).transform(df))
    assert(missing.getMessage.contains("input column(s) nope not found"))
    val both = intercept[IllegalArgumentException](t.setInputCol("a").transform(df))
    assert(both.getMessage.contains("set only one"))
  }
}
