package dlbridge.ml

import java.nio.file.{Files, Path}

import dlbridge.SparkSessionSuite
import dlbridge.python.PythonBridge

import org.apache.spark.api.java.JavaSparkContext
import org.apache.spark.ml.{Pipeline, PipelineStage}
import org.apache.spark.ml.linalg.Vectors
import org.apache.spark.sql.DataFrame
import org.scalatest.funsuite.AnyFunSuite

/** A saved stage names model code but never grants it: load-time refusal in Scala, fit-time in Python. */
class ModelSourceSafetySuite extends AnyFunSuite with SparkSessionSuite {

  override protected def extraConf: Map[String, String] =
    Map("spark.dlbridge.python.modules" -> "dlbridge_test_udfs,model_source_factories")

  private lazy val tiny: DataFrame = spark.createDataFrame((0 until 32).map { i =>
    (Vectors.dense(i % 3, i % 5, i % 2, 1.0), (i % 2).toDouble)
  }).toDF("features", "label")

  private def quick(est: KerasEstimator): KerasEstimator =
    est.setEpochs(1).setBatchSize(16).setNumWorkers(1).setVerbose(0)

  private val Fix = Seq("@dlbridge.register_model_factory", "spark.dlbridge.python.modules",
    "spark.dlbridge.modelFactories.allowed")

  private def saved(stage: PipelineStage with org.apache.spark.ml.util.MLWritable): String = {
    val dir: Path = tempDir("dlbridge-model-source").resolve("stage")
    stage.write.save(dir.toString)
    dir.toString
  }

  test("load refuses a module:function the application does not allow, before Python starts") {
    val target = tempDir("dlbridge-pwned").resolve("pwned")
    val attack = quick(new KerasEstimator()).setModelFactory("os:system")
      .setModelFactoryArgs(s"""{"command": "touch $target"}""")
    val estimatorPath = saved(attack)
    val pipelinePath = saved(new Pipeline().setStages(Array(attack)))
    val e = intercept[IllegalArgumentException](KerasEstimator.load(estimatorPath))
    assert(e.getMessage.contains("modelFactory 'os:system', a module:function that is not listed"), e.getMessage)
    Fix.foreach(part => assert(e.getMessage.contains(part), e.getMessage))
    val inPipeline = intercept[IllegalArgumentException](Pipeline.load(pipelinePath))
    assert(inPipeline.getMessage.contains("modelFactory 'os:system'"))
    assert(!PythonBridge.isRegistered(JavaSparkContext.fromSparkContext(spark.sparkContext)), "load must not start Python")
    spark.conf.set(ModelSources.AllowedFactories, "os:system")  // only the running application grants it
    try assert(KerasEstimator.load(estimatorPath).getModelFactory == "os:system")
    finally spark.conf.unset(ModelSources.AllowedFactories)
    assert(!Files.exists(target))
  }

  test("fit names the factory, the fix and the registered factories; nothing runs") {
    val target = tempDir("dlbridge-pwned").resolve("pwned")
    Seq("no_such_factory", "os:system").foreach { factory =>
      val est = quick(new KerasEstimator()).setModelFactory(factory)
        .setModelFactoryArgs(s"""{"command": "touch $target"}""")
      val e = intercept[Exception](est.fit(tiny))
      val message = e.getMessage
      assert(message.contains(s"modelFactory '$factory' is neither a registered model factory"), message)
      assert(message.contains("Registered model factories: [") && message.contains("'tiny_mlp'"), message)
      Fix.foreach(part => assert(message.contains(part), message))
    }
    assert(!Files.exists(target))
  }

  test("a registered factory trains from Scala by name; its args are checked against the signature") {
    val bad = intercept[Exception](quick(new KerasEstimator()).setModelFactory("tiny_mlp")
      .setModelFactoryArgs("""{"depth": 2}""").fit(tiny))
    assert(bad.getMessage.contains("Model factory 'tiny_mlp' has no param 'depth'"), bad.getMessage)
    val model = KerasEstimator.load(saved(quick(new KerasEstimator()).setModelFactory("tiny_mlp")
      .setModelFactoryArgs("""{"hidden": 3}"""))).fit(tiny)
    assert(model.summary.inputShape.toSeq == Seq(4) && model.transform(tiny).count() == 32)
  }

  test("params: modelConfig takes Keras JSON only; modelFactory a name or module:function") {
    val est = new KerasEstimator()
    val config = intercept[IllegalArgumentException](est.setModelConfig("keras_factories:small_mlp"))
    assert(config.getMessage.contains("modelConfig expects a Keras model's JSON config"), config.getMessage)
    assert(config.getMessage.contains("for a factory use modelFactory, for a .keras file use modelFile"))
    intercept[IllegalArgumentException](est.setModelConfig("/models/net.keras"))
    val factory = intercept[IllegalArgumentException](est.setModelFactory("touch /tmp/x"))
    assert(factory.getMessage.contains("modelFactory expects the name of a model factory registered"))
    assert(est.setModelFactory("tiny_mlp").setModelConfig("").getModelFactory == "tiny_mlp")
  }
}
