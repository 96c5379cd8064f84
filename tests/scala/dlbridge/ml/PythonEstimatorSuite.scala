package dlbridge.ml

import java.util.concurrent.{CountDownLatch, TimeUnit}
import java.util.concurrent.atomic.AtomicInteger

import dlbridge.SparkSessionSuite
import dlbridge.python.PythonBackendException

import org.apache.commons.io.FileUtils
import org.apache.spark.ml.{Pipeline, PipelineModel}
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator
import org.apache.spark.ml.param.ParamMap
import org.apache.spark.ml.tuning.{CrossValidator, ParamGridBuilder}
import org.apache.spark.scheduler.{SparkListener, SparkListenerJobStart}
import org.apache.spark.sql.DataFrame
import org.apache.spark.sql.functions.{col, cos, lit, sin}
import org.apache.spark.sql.types.{DoubleType, StructType}
import org.scalatest.funsuite.AnyFunSuite

/**
 * PythonEstimator / PythonModel from Scala with the example estimator `centroid_classifier`
 * (examples/python/centroids.py) and the failing ones of tests/python/udfs/dlbridge_test_udfs.py.
 */
class PythonEstimatorSuite extends AnyFunSuite with SparkSessionSuite {

  override protected def extraConf: Map[String, String] =
    Map("spark.dlbridge.python.modules" -> "dlbridge_test_udfs,centroids")

  /**
   * Two classes around (10, 10) and (12, 12), each point within 0.5 of its centre in each coordinate:
   * separable, and far from the origin, so shrinking the centroids by 0.9 (to about (1, 1) and (1.2, 1.2))
   * puts every point nearer class 1's.
   */
  private def data(from: Long, until: Long): DataFrame =
    spark.range(from, until, 1, 2).select(
      (lit(10.0) + (col("id") % 2) * 2.0 + sin(col("id")) * 0.5).as("a"),
      (lit(10.0) + (col("id") % 2) * 2.0 + cos(col("id") * 0.7) * 0.5).as("b"),
      (col("id") % 2).cast("double").as("label"))

  private lazy val training = data(0, 200).cache()
  private lazy val holdout = data(200, 300).cache()

  private def estimator(shrink: Double = 0.0): PythonEstimator = new PythonEstimator()
    .setFunction("centroid_classifier").setFunctionParams(s"""{"shrink": $shrink}""")
    .setInputCols(Array("a", "b")).setLabelCol("label").setOutputCol("prediction")

  private def predictions(df: DataFrame, column: String = "prediction"): Array[Double] =
    df.orderBy("a", "b").select(column).collect().map(_.getDouble(0))

  private def accuracy(df: DataFrame, column: String = "prediction"): Double =
    df.filter(col(column) === col("label")).count().toDouble / df.count()

  test("fit and transform: the predictions match the labels, the state is the fit's files") {
    val model = estimator().fit(training)
    assert(model.isInstanceOf[PythonModel] && model.uid.startsWith("pythonEstimator_"))
    assert(model.stateFiles.toSeq == Seq("centroids.npy", "classes.npy"))
    val out = model.transform(holdout)
    assert(out.schema("prediction").dataType == DoubleType)
    assert(accuracy(out) >= 0.95, s"accuracy ${accuracy(out)}")
    assert(model.getFunction == "centroid_classifier" && model.getLabelCol == "label")
    assert(model.hasParent && model.parent.uid == model.uid)
  }

  test("read/write: a fitted Pipeline and a PythonModel saved and loaded give identical predictions") {
    val fitted = new Pipeline().setStages(Array(estimator())).fit(training)
    val dir = tempDir("dlbridge-python-estimator").resolve("stage").toString
    try {
      fitted.write.overwrite().save(s"$dir/pipeline")
      val loaded = PipelineModel.load(s"$dir/pipeline")
      val stage = loaded.stages.head
      assert(stage.isInstanceOf[PythonModel], stage.getClass.getName)
      assert(predictions(loaded.transform(holdout)) sameElements predictions(fitted.transform(holdout)))

      val model = fitted.stages.head.asInstanceOf[PythonModel]
      model.write.overwrite().save(s"$dir/model")
      val reloaded = PythonModel.load(s"$dir/model")
      assert(reloaded.uid == model.uid)
      assert(reloaded.stateFiles.toSeq == model.stateFiles.toSeq)
      assert(reloaded.getFunction == "centroid_classifier" && reloaded.getFunctionParams == """{"shrink": 0.0}""")
      assert(reloaded.getInputCols.toSeq == Seq("a", "b") && reloaded.getLabelCol == "label")
      assert(reloaded.getOutputCol == "prediction" && !reloaded.isSet(reloaded.weightCol))
      assert(predictions(reloaded.transform(holdout)) sameElements predictions(model.transform(holdout)))

      val unfitted = new Pipeline().setStages(Array(estimator(0.0)))
      unfitted.write.overwrite().save(s"$dir/estimator")
      val est = Pipeline.load(s"$dir/estimator").getStages.head.asInstanceOf[PythonEstimator]
      assert(est.getFunctionParams == """{"shrink": 0.0}""" && est.getLabelCol == "label")
    } finally FileUtils.deleteDirectory(new java.io.File(dir).getParentFile)
  }

  test("CrossValidator with parallelism 2 over functionParams picks the unshrunk centroids") {
    val est = estimator()
    val grid = new ParamGridBuilder()
      .addGrid(est.functionParams, Array("""{"shrink": 0.0}""", """{"shrink": 0.9}"""))
      .build()
    val cv = new CrossValidator().setEstimator(est).setEstimatorParamMaps(grid)
      .setEvaluator(new MulticlassClassificationEvaluator().setMetricName("accuracy"))
      .setNumFolds(2).setParallelism(2).setSeed(5)
    val tuned = cv.fit(training)
    assert(tuned.avgMetrics.length == 2)
    assert(tuned.avgMetrics(0) >= 0.95 && tuned.avgMetrics(1) <= 0.6, tuned.avgMetrics.mkString(", "))
    val best = tuned.bestModel
    assert(best.isInstanceOf[PythonModel], best.getClass.getName)
    assert(best.asInstanceOf[PythonModel].getFunctionParams == """{"shrink": 0.0}""")
    assert(accuracy(tuned.transform(holdout)) >= 0.95)
  }

  test("transformSchema runs no Spark job and adds the output column") {
    val est = estimator()
    val model = est.fit(training)
    val schema = training.schema
    val ((estSchema, modelSchema), jobs) = countingJobs {
      (est.transformSchema(schema), model.transformSchema(StructType(schema.fields.filter(_.name != "label"))))
    }
    assert(jobs == 0, s"$jobs Spark job(s) ran")
    assert(countingJobs(training.count())._2 >= 1, "the job counter itself sees no job")
    assert(estSchema("prediction").dataType == DoubleType)
    assert(modelSchema.fieldNames.toSeq == Seq("a", "b", "prediction"))
  }

  test("transformSchema errors name the column, the param or the function, and the fix") {
    val schema = training.schema
    val missing = intercept[IllegalArgumentException](estimator().setInputCols(Array("a", "nope")).transformSchema(schema))
    assert(missing.getMessage.contains("column(s) nope not found"))
    assert(missing.getMessage.contains("a, b, label"))
    val noLabel = intercept[IllegalArgumentException](estimator().setLabelCol("y").transformSchema(schema))
    assert(noLabel.getMessage.contains("column(s) y not found"))
    val exists = intercept[IllegalArgumentException](estimator().setOutputCol("a").transformSchema(schema))
    assert(exists.getMessage.contains("outputCol 'a' already exists"))

    val unknown = intercept[PythonBackendException](
      estimator().setFunctionParams("""{"shrinkk": 0.1}""").transformSchema(schema))
    assert(unknown.getMessage.contains("has no param 'shrinkk'"))
    assert(unknown.getMessage.contains("Accepted params: shrink"))
    val typed = intercept[PythonBackendException](
      estimator().setFunctionParams("""{"shrink": "lots"}""").transformSchema(schema))
    assert(typed.getMessage.contains("param 'shrink' expects int or float"))
    val column = intercept[IllegalArgumentException](
      estimator().setFunctionParams("""{"labelCol": "a"}""").transformSchema(schema))
    assert(column.getMessage.contains("functionParams sets labelCol, which is a column param"))
    assert(column.getMessage.contains("call setLabelCol instead"))

    val unset = intercept[IllegalArgumentException](
      new PythonEstimator().setInputCols(Array("a")).transformSchema(schema))
    assert(unset.getMessage.contains("param function is not set"))
    val noInputs = intercept[IllegalArgumentException](
      new PythonEstimator().setFunction("centroid_classifier").transformSchema(schema))
    assert(noInputs.getMessage.contains("inputCols is not set"))
    val noSuch = intercept[PythonBackendException](estimator().setFunction("no_such_estimator").transformSchema(schema))
    assert(noSuch.getMessage.contains("registered as 'no_such_estimator'"))
    // Lists the registered estimators (the kind the stage runs), not the transformers.
    assert(noSuch.getMessage.contains("'centroid_classifier'") && !noSuch.getMessage.contains("'plus_k'"))
    val needsLabel = intercept[PythonBackendException](
      new PythonEstimator().setFunction("centroid_classifier").setInputCols(Array("a", "b")).transformSchema(schema))
    assert(needsLabel.getMessage.contains("needs param 'labelCol'"))
    assert(needsLabel.getMessage.contains("setLabelCol"))
  }

  test("copy: a copy with another outputCol works and leaves the original unchanged") {
    val est = estimator()
    val copied = est.copy(ParamMap(est.outputCol -> "copied"))
    assert(copied.uid == est.uid && copied.getOutputCol == "copied" && est.getOutputCol == "prediction")
    val model = copied.fit(training)
    assert(model.getOutputCol == "copied")
    assert(accuracy(model.transform(holdout), "copied") >= 0.95)

    val modelCopy = model.copy(ParamMap(model.outputCol -> "again"))
    assert(modelCopy.getOutputCol == "again" && model.getOutputCol == "copied")
    assert(modelCopy.stateFiles.toSeq == model.stateFiles.toSeq && modelCopy.parent == model.parent)
    assert(predictions(modelCopy.transform(holdout), "again") sameElements predictions(model.transform(holdout), "copied"))
    assert(model.transform(holdout).columns.contains("copied"))
  }

  test("a fit function that raises, or returns a non-dict, fails naming the function and what it did") {
    val raising = new PythonEstimator().setFunction("raising_fit").setInputCols(Array("a", "b")).setOutputCol("p")
    val raised = intercept[PythonBackendException](raising.fit(training))
    assert(raised.getMessage.contains("Python estimator 'raising_fit'"))
    assert(raised.getMessage.contains("raised ValueError"))
    assert(raised.getMessage.contains("raising_fit refuses columns ['a', 'b']"))

    val listing = new PythonEstimator().setFunction("returns_list_fit").setInputCols(Array("a")).setOutputCol("p")
    val returned = intercept[PythonBackendException](listing.fit(training))
    assert(returned.getMessage.contains("Python estimator 'returns_list_fit'"))
    assert(returned.getMessage.contains("must return the model state"))
    assert(returned.getMessage.contains("It returned list [1, 2, 3]"))
  }

  // The JVM stage tells the backend which kind it runs, so the lookup answers before any param check.
  test("a PythonTransformer naming an estimator fails saying to use PythonEstimator") {
    val t = new PythonTransformer().setFunction("centroid_classifier").setInputCols(Array("a", "b"))
      .setOutputCol("p")
    val e = intercept[PythonBackendException](t.transform(holdout))
    assert(e.getMessage.contains("centroid_classifier"))
    assert(e.getMessage.contains("is a Python estimator: use PythonEstimator(function='centroid_classifier'"),
      e.getMessage)
    assert(!e.getMessage.contains("needs param 'inputCols'"), e.getMessage)
  }

  test("a PythonEstimator naming a transformer fails saying it is a transformer") {
    val est = new PythonEstimator().setFunction("plus_k").setInputCols(Array("a")).setOutputCol("p")
    val e = intercept[PythonBackendException](est.fit(training))
    assert(e.getMessage.contains("plus_k"))
    assert(e.getMessage.contains("is a Python transformer: use PythonTransformer(function='plus_k'"), e.getMessage)
    assert(!e.getMessage.contains("has no param 'inputCols'"), e.getMessage)
  }

  /** The result of `body` and the number of Spark jobs it started (a marker job, seen last, orders the listener's events). */
  private def countingJobs[T](body: => T): (T, Int) = {
    val marker = "dlbridge-marker-" + java.util.UUID.randomUUID()
    val started = new AtomicInteger()
    val markerSeen = new CountDownLatch(1)
    val listener = new SparkListener {
      override def onJobStart(job: SparkListenerJobStart): Unit =
        if (Option(job.properties).exists(_.getProperty("spark.job.description") == marker)) markerSeen.countDown()
        else started.incrementAndGet()
    }
    spark.sparkContext.addSparkListener(listener)
    try {
      val result = body
      spark.sparkContext.setJobDescription(marker)
      try spark.range(1).count() finally spark.sparkContext.setJobDescription(null)
      assert(markerSeen.await(60, TimeUnit.SECONDS), "the listener did not see the marker job")
      (result, started.get())
    } finally spark.sparkContext.removeSparkListener(listener)
  }
}
