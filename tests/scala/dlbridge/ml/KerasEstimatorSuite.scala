package dlbridge.ml

import java.io.{ByteArrayOutputStream, PrintStream}
import java.nio.charset.StandardCharsets
import java.nio.file.Files
import java.util.concurrent.ConcurrentLinkedQueue

import scala.jdk.CollectionConverters._

import dlbridge.SparkSessionSuite

import org.apache.spark.ml.{Pipeline, PipelineModel}
import org.apache.spark.scheduler.{SparkListener, SparkListenerJobStart}
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator
import org.apache.spark.ml.feature.VectorAssembler
import org.apache.spark.ml.functions.array_to_vector
import org.apache.spark.ml.linalg.Vector
import org.apache.spark.sql.DataFrame
import org.apache.spark.sql.functions.{array, col, lit}
import org.scalatest.funsuite.AnyFunSuite

class KerasEstimatorSuite extends AnyFunSuite with SparkSessionSuite {

  private lazy val digits = Digits.trainTest(spark)
  private def train = digits._1
  private def heldOut = digits._2

  private def estimator: KerasEstimator = new KerasEstimator()
    .setHiddenLayers(Array(64)).setEpochs(14).setBatchSize(32)
    .setOptimizer("adam").setOptimizerOptions("""{"learning_rate": 0.005}""").setSeed(1)

  private lazy val model: KerasModel = estimator.setMode("hogwild").fit(train)

  private def accuracy(predictions: DataFrame): Double =
    new MulticlassClassificationEvaluator().setMetricName("accuracy").evaluate(predictions)

  test("params: defaults, uid, validators naming the param") {
    val est = new KerasEstimator()
    assert(est.uid.startsWith("kerasEst_") && est.uid != new KerasEstimator().uid)
    assert(est.getMode == "hogwild" && est.getEpochs == 10 && est.getBatchSize == 128)
    assert(est.getHiddenLayers.sameElements(Array(64)) && est.getProbabilityCol == "probability")
    val bad = intercept[IllegalArgumentException](est.setMode("fast"))
    assert(bad.getMessage.contains("mode") && bad.getMessage.contains("fast"))
    val json = intercept[IllegalArgumentException](est.setOptimizerOptions("learning_rate=0.1"))
    assert(json.getMessage.contains("optimizerOptions expects a JSON object"))
    intercept[IllegalArgumentException](est.setValidationFraction(1.0))
  }

  test("fit from Scala reaches >= 0.95 accuracy on digits; summary carries the history") {
    val predictions = model.transform(heldOut)
    val acc = accuracy(predictions)
    assert(acc >= 0.95, s"accuracy $acc")
    assert(predictions.columns.toSeq == Seq("features", "label", "prediction", "probability"))
    val p = predictions.select("probability").head().getAs[Vector](0)
    assert(p.size == 10 && math.abs(p.toArray.sum - 1.0) < 1e-4)
    assert(model.summary.epochs == 14)
    val losses = model.summary.lossHistory
    assert(losses.last < losses.head, losses.mkString(", "))
    assert(model.numFeatures == 64)
  }

  test("read/write: a saved and reloaded model predicts the same numbers") {
    val dir = tempDir("dlbridge-keras").resolve("model").toString
    model.write.overwrite().save(dir)
    val loaded = KerasModel.load(dir)
    assert(loaded.uid == model.uid && loaded.getEpochs == 14)
    val a = model.setRawOutputCol("raw").transform(heldOut).select("raw").collect().map(_.getSeq[Float](0))
    val b = loaded.setRawOutputCol("raw").transform(heldOut).select("raw").collect().map(_.getSeq[Float](0))
    a.zip(b).foreach { case (x, y) => x.zip(y).foreach { case (u, v) => assert(math.abs(u - v) <= 1e-6) } }
    model.setRawOutputCol("")
  }

  test("bad input is rejected before any job, naming the column and the fix") {
    val missing = intercept[IllegalArgumentException](model.transform(heldOut.withColumnRenamed("features", "f")))
    assert(missing.getMessage.contains("featuresCol 'features' not found"))
    val wrongType = intercept[IllegalArgumentException](model.transform(heldOut.withColumn("features", lit("x"))))
    assert(wrongType.getMessage.contains("must be an ML Vector or array<float|double>; received string"))
    val small = new org.apache.spark.ml.feature.VectorAssembler().setInputCols(Array("a", "b"))
      .setOutputCol("features").transform(spark.range(3).select(col("id").cast("double").as("a"), lit(1.0).as("b")))
    val size = intercept[IllegalArgumentException](model.transform(small))
    assert(size.getMessage.contains("featuresCol 'features' has rows of 2 values but the model expects 64 input values"),
      size.getMessage)
    val sources = intercept[IllegalArgumentException](
      new KerasEstimator().setModelConfig("{}").setModelFactory("a.b:c").fit(train))
    assert(sources.getMessage.contains("at most one model source") && sources.getMessage.contains("modelConfig"))
    val taken = intercept[IllegalArgumentException](model.transform(heldOut.withColumn("prediction", lit(0.0))))
    assert(taken.getMessage.contains("predictionCol 'prediction' already exists"))
  }

  /**
   * Runs `body` with this JVM's System.err captured and the description of every job started
   * recorded; waits (up to `waitMs`) until `done` holds for them, as both arrive asynchronously (the
   * companion's output thread, the listener bus). Returns the captured lines and descriptions.
   */
  private def observed(waitMs: Long)(done: (Seq[String], Seq[String]) => Boolean)(body: => Unit)
      : (Seq[String], Seq[String]) = {
    val descriptions = new ConcurrentLinkedQueue[String]()
    val listener = new SparkListener {
      override def onJobStart(start: SparkListenerJobStart): Unit =
        Option(start.properties).flatMap(p => Option(p.getProperty("spark.job.description"))).foreach(descriptions.add)
    }
    val captured = new ByteArrayOutputStream()
    val original = System.err
    def seen = (new String(captured.toByteArray, StandardCharsets.UTF_8).linesIterator.toList,
      descriptions.asScala.toList)
    spark.sparkContext.addSparkListener(listener)
    System.setErr(new PrintStream(captured, true, "UTF-8"))
    try {
      body
      val deadline = System.nanoTime() + waitMs * 1000000
      while (!done.tupled(seen) && System.nanoTime() < deadline) Thread.sleep(100)
      seen
    } finally {
      System.setErr(original)
      spark.sparkContext.removeSparkListener(listener)
    }
  }

  test("inside a Pipeline, saved and loaded; each epoch prints a progress line; the fit describes its jobs") {
    val stage = estimator.setEpochs(2).setValidationFraction(0.1).setMetrics(Array("auc"))
    val pipeline = new Pipeline().setStages(Array(stage))
    val expectedLines = Seq(1, 2).map(k => s"dlbridge fit ${stage.uid} epoch $k/2")
    // one job trains both epochs; the driver evaluates the small validation split itself
    val expectedJobs = Seq("preparing input", "collecting the validation split", "epochs 1-2/2")
      .map(what => s"dlbridge fit ${stage.uid} $what")
    var fitted: PipelineModel = null
    val (lines, descriptions) = observed(10000)((lines, descriptions) =>
      expectedLines.forall(e => lines.exists(_.startsWith(e))) && expectedJobs.forall(descriptions.contains)) {
      fitted = pipeline.fit(train)
    }
    val progress = """dlbridge fit (\S+) epoch (\d)/2 - loss [\d.]+ - val_loss [\d.]+ - val_accuracy [\d.]+ - val_auc [\d.]+ - \d+ samples/s - [\d.]+s - ETA (?:\d+s|\d+m\d\ds|\d+h\d\dm)""".r
    assert(lines.collect { case progress(uid, k) => (uid, k.toInt) } == Seq(stage.uid -> 1, stage.uid -> 2),
      lines.mkString("\n"))
    assert(expectedJobs.forall(descriptions.contains), descriptions.mkString("\n"))
    val summary = fitted.stages.head.asInstanceOf[KerasModel].summary
    assert(summary.metricNames.contains("val_loss") && summary.metricNames.contains("val_accuracy"),
      summary.metricNames.mkString(", "))
    assert(summary.metric("val_accuracy").forall(a => a > 0.0 && a <= 1.0))
    assert(summary.metric("auc").length == 2 && summary.metric("auc").sameElements(summary.metric("val_auc")))
    assert(summary.metric("auc").forall(a => a > 0.5 && a <= 1.0), summary.metric("auc").mkString(", "))
    val dir = tempDir("dlbridge-keras-pipeline").resolve("p").toString
    fitted.write.overwrite().save(dir)
    val loaded = PipelineModel.load(dir)
    assert(loaded.stages.head.isInstanceOf[KerasModel])
    assert(loaded.transform(heldOut).count() == heldOut.count())
  }

  test("verbose 0 prints no progress line; the jobs are still described") {
    val quiet = new KerasEstimator().setHiddenLayers(Array(8)).setEpochs(1).setBatchSize(64).setVerbose(0)
    val (lines, descriptions) = observed(2000)((_, _) => false)(quiet.fit(train))
    assert(!lines.exists(_.contains("dlbridge fit")), lines.mkString("\n"))
    assert(descriptions.contains(s"dlbridge fit ${quiet.uid} epoch 1/1"), descriptions.mkString("\n"))
  }

  test("checkpoint params: defaults, Spark's checkpointInterval validator, summary.resumedFromEpoch") {
    val est = new KerasEstimator()
    assert(est.getCheckpointDir == "" && est.getCheckpointInterval == 10)
    assert(est.setCheckpointDir("hdfs:///tmp/ck").setCheckpointInterval(-1).getCheckpointInterval == -1)
    val zero = intercept[IllegalArgumentException](est.setCheckpointInterval(0))
    assert(zero.getMessage.contains("checkpointInterval given invalid value 0"))
    assert(new KerasTrainingSummary("""{"history": [{"epoch": 4, "loss": 0.5}], "resumedFromEpoch": 3}""")
      .resumedFromEpoch == 3)
    assert(new KerasTrainingSummary("""{"history": []}""").resumedFromEpoch == 0)  // saved before checkpoints
  }

  test("a JVM fit (companion backend) checkpoints through Hadoop's FileSystem and resumes from it") {
    val dir = tempDir("dlbridge-checkpoints")
    val est = new KerasEstimator().setHiddenLayers(Array(16)).setEpochs(1).setBatchSize(64).setVerbose(0)
      .setCheckpointDir(dir.toUri.toString).setCheckpointInterval(1)
    assert(est.fit(train).summary.resumedFromEpoch == 0)
    assert(Files.exists(dir.resolve("epoch-000001.npz")))
    val resumed = est.setEpochs(2).fit(train).summary
    assert(resumed.resumedFromEpoch == 1 && resumed.epochNumbers.sameElements(Array(2)))
  }

  test("featuresCols: refused together with featuresCol, and a column of another type is named, before any job") {
    val df = spark.range(2).select(array_to_vector(array(lit(1.0), lit(2.0))).as("features"), lit(1.0).as("extra"),
      lit("x").as("name"), lit(0.0).as("label"))
    val both = intercept[IllegalArgumentException](new KerasEstimator().setFeaturesCol("features")
      .setFeaturesCols(Array("features", "extra")).transformSchema(df.schema))
    assert(Seq("featuresCol ('features')", "featuresCols ['features', 'extra']", "mutually exclusive", "Fix: clear")
      .forall(both.getMessage.contains), both.getMessage)
    val wrongType = intercept[IllegalArgumentException](new KerasEstimator().setFeaturesCols(Array("features", "name"))
      .transformSchema(df.schema))
    assert(wrongType.getMessage.contains("featuresCols column 'name' must be an ML Vector, an array of numbers or a number"))
    val weight = intercept[IllegalArgumentException](new KerasEstimator().setWeightCol("name").transformSchema(df.schema))
    assert(weight.getMessage.contains("weightCol 'name' must be numeric"), weight.getMessage)
    val est = new KerasEstimator().setFeaturesCols(Array("features", "extra")).setSeed(1L << 40)
    assert(est.getSeed == (1L << 40) && est.transformSchema(df.schema).fieldNames.contains("prediction"))
  }

  test("the pipelines saved with an Int seed by main-4e5c77d load with a Long seed, and the model predicts the same") {
    val saved = "tests/resources/saved/main-4e5c77d"
    val estimator = KerasEstimator.load(s"$saved/pipeline/stages/2_KerasEstimator_227a5fdbfaf1")
    assert(estimator.getSeed == 3L && estimator.getEpochs == 3)
    val model = KerasModel.load(s"$saved/pipeline_model/stages/2_KerasEstimator_227a5fdbfaf1")
    assert(model.getSeed == 3L && model.getPredictionCol == "pred")
    val input = spark.read.option("header", "true").schema("a double, b double, label double").csv(s"$saved/input.csv")
    val features = new VectorAssembler().setInputCols(Array("a_shifted", "b")).setOutputCol("features")
      .transform(input.withColumn("a_shifted", col("a") + 1.5)) // the saved PythonTransformer plus_k with k=1.5
    val got = model.transform(features).select("a", "b", "pred").collect().map(r => (r.getDouble(0), r.getDouble(1)) -> r.getDouble(2)).toMap
    val expected = spark.read.option("header", "true").schema("a double, b double, pred double").csv(s"$saved/predictions.csv")
      .collect().map(r => (r.getDouble(0), r.getDouble(1)) -> r.getDouble(2)).toMap
    assert(got.size == 240 && got == expected)
  }

  test("per-epoch params from Java; summary.metric names the recorded metrics when one is missing") {
    val est = JavaKerasExample.withEpochOptions(new KerasEstimator(), "/tmp/board")
    assert(est.getMetrics.sameElements(Array("auc", "precision")) && est.getEarlyStoppingPatience == 3)
    assert(est.getTensorboardDir == "/tmp/board")
    val defaults = new KerasEstimator()
    assert(defaults.getMetrics.isEmpty && defaults.getEarlyStoppingPatience == 0 && defaults.getTensorboardDir == "")
    intercept[IllegalArgumentException](defaults.setEarlyStoppingPatience(-1))
    val summary = new KerasTrainingSummary(
      """{"history": [{"epoch": 1, "loss": 0.9, "val_loss": 0.8, "val_auc": 0.7},
        |{"epoch": 2, "loss": 0.5, "val_loss": 0.9, "val_auc": 0.6}], "bestEpoch": 1, "stoppedEpoch": 2}""".stripMargin)
    assert(summary.metric("auc").sameElements(Array(0.7, 0.6)) && summary.metric("loss").sameElements(Array(0.9, 0.5)))
    assert(summary.bestEpoch == 1 && summary.stoppedEpoch == 2)
    val missing = intercept[IllegalArgumentException](summary.metric("precision"))
    assert(missing.getMessage.contains("no metric named 'precision' was recorded; recorded: loss, val_loss, val_auc"),
      missing.getMessage)
    val untrained = new KerasTrainingSummary("""{"history": []}""")
    assert(untrained.lossHistory.isEmpty && untrained.bestEpoch == 0 && untrained.stoppedEpoch == 0)
    assert(intercept[IllegalArgumentException](untrained.metric("loss")).getMessage.contains("no training history"))
  }
}
