package dlbridge.ml

import java.nio.file.{Files, Paths}
import java.util.ServiceLoader

import scala.jdk.CollectionConverters._

import dlbridge.SparkSessionSuite

import org.apache.commons.io.FileUtils
import org.apache.spark.ml.{Estimator, Transformer}
import org.apache.spark.ml.dlbridge.LocalSaving
import org.apache.spark.ml.param.Params
import org.scalatest.funsuite.AnyFunSuite

/**
 * What Spark Connect ML needs of dlbridge's stages (the end-to-end client tests are
 * tests/python/test_connect.py): ServiceLoader entries, `(uid)` and no-arg constructors, params of
 * simple types, a realistic `estimatedSize`, and models that save to and load from local paths.
 */
class ConnectStagesSuite extends AnyFunSuite with SparkSessionSuite {

  private val estimators = Seq(classOf[KerasEstimator], classOf[PythonEstimator])
  private val transformers = Seq(classOf[KerasModel], classOf[PythonModel], classOf[PythonTransformer])

  private def listed(service: Class[_]): Set[String] =
    ServiceLoader.load(service, getClass.getClassLoader).stream().iterator().asScala.map(_.`type`().getName).toSet

  test("ServiceLoader lists dlbridge's estimators and transformers next to Spark's own") {
    val est = listed(classOf[Estimator[_]])
    assert(estimators.map(_.getName).toSet.subsetOf(est), est)
    assert(est.contains("org.apache.spark.ml.classification.LogisticRegression"))
    val tr = listed(classOf[Transformer])
    assert(transformers.map(_.getName).toSet.subsetOf(tr), tr)
    assert(tr.contains("org.apache.spark.ml.feature.VectorAssembler"))
  }

  test("every listed stage has a (uid) and a public no-arg constructor, and params of simple types") {
    val simple: Set[Class[_]] = Set(classOf[String], classOf[java.lang.Integer], classOf[java.lang.Long],
      classOf[java.lang.Double], classOf[java.lang.Boolean], classOf[Array[Int]], classOf[Array[String]])
    for (cls <- estimators ++ transformers) {
      val stage = cls.getConstructor(classOf[String]).newInstance("connect_1").asInstanceOf[Params]
      assert(stage.uid == "connect_1")
      assert(cls.getConstructor().newInstance().asInstanceOf[Params].uid.nonEmpty)
      for (param <- stage.params; value <- stage.getDefault(param)) {
        assert(simple.exists(_.isInstance(value)), s"${cls.getSimpleName}.${param.name}: ${value.getClass}")
      }
    }
  }

  test("an empty KerasModel (made by the uid constructor) refuses transform and save, naming the fix") {
    val empty = new KerasModel("kerasModel_empty")
    val df = spark.range(2).selectExpr("array(cast(id as double)) as features")
    val error = intercept[IllegalArgumentException](empty.transform(df))
    assert(error.getMessage.contains("KerasModel kerasModel_empty holds no Keras network") &&
      error.getMessage.contains("KerasModel.load(path)"), error.getMessage)
    val dir = Files.createTempDirectory("dlbridge-empty-")
    try {
      val save = intercept[IllegalArgumentException](empty.write.overwrite().save(dir.resolve("m").toString))
      assert(save.getMessage.contains("holds no Keras network"), save.getMessage)
    } finally FileUtils.deleteDirectory(dir.toFile)
  }

  test("estimatedSize is the memory the model holds: its bytes, plus little") {
    val keras = new KerasModel("k", Array.fill[Byte](1 << 20)(1), """{"history": []}""")
    assert(keras.estimatedSize >= (1 << 20) && keras.estimatedSize < (1 << 20) + 4096, keras.estimatedSize)
    val python = new PythonModel("p", Map("a.npy" -> new Array[Byte](1 << 19), "b.bin" -> new Array[Byte](1 << 19)))
    assert(python.estimatedSize >= (1 << 20) && python.estimatedSize < (1 << 20) + 4096, python.estimatedSize)
  }

  test("models save to and load from local paths in Spark's local saving mode (the Connect model cache)") {
    val dir = Files.createTempDirectory("dlbridge-local-")
    try {
      val bytes = Array.tabulate[Byte](5000)(_.toByte)
      val keras = new KerasModel("kerasLocal", bytes, """{"history": [{"loss": 1.0}]}""").setInferenceBatchSize(7)
      LocalSaving.save(keras.write, dir.resolve("keras").toString)
      assert(Files.readAllBytes(dir.resolve("keras/data/model.keras")).sameElements(bytes))
      val loaded = LocalSaving.load(KerasModel.read, dir.resolve("keras").toString)
      assert(loaded.uid == "kerasLocal" && loaded.modelBytes.sameElements(bytes) && loaded.getInferenceBatchSize == 7)
      assert(loaded.summary.lossHistory.toSeq == Seq(1.0))
      // a SavedModel stage (KerasModel.fromSavedModel) keeps its directory as data/saved_model.zip
      val saved = new KerasModel("savedLocal", bytes, """{"history": []}""", KerasSavedModel.Archive)
      LocalSaving.save(saved.write, dir.resolve("saved").toString)
      assert(Files.readAllBytes(dir.resolve("saved/data/saved_model.zip")).sameElements(bytes))
      assert(!Files.exists(dir.resolve("saved/data/model.keras")))
      val savedBack = LocalSaving.load(KerasModel.read, dir.resolve("saved").toString)
      assert(savedBack.networkFile == KerasSavedModel.Archive && savedBack.modelBytes.sameElements(bytes))

      val state = Map("c.npy" -> Array[Byte](1, 2, 3), "meta.json" -> "{}".getBytes("UTF-8"))
      val python = new PythonModel("pythonLocal", state).setInputCols(Array("a", "b"))
      LocalSaving.save(python.write, dir.resolve("python").toString)
      assert(Files.exists(Paths.get(dir.toString, "python", "data", "c.npy")))
      val reloaded = LocalSaving.load(PythonModel.read, dir.resolve("python").toString)
      assert(reloaded.stateFiles.toSeq == Seq("c.npy", "meta.json") && reloaded.getInputCols.toSeq == Seq("a", "b"))
      assert(reloaded.state("c.npy").sameElements(Array[Byte](1, 2, 3)))
    } finally FileUtils.deleteDirectory(dir.toFile)
  }
}
