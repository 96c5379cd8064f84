package dlbridge.ml

import dlbridge.SparkSessionSuite

import org.apache.spark.ml.functions.array_to_vector
import org.apache.spark.ml.linalg.Vector
import org.apache.spark.sql.{DataFrame, Row}
import org.apache.spark.sql.execution.SparkPlan
import org.apache.spark.sql.execution.adaptive.AdaptiveSparkPlanHelper
import org.apache.spark.sql.execution.python.ArrowEvalPythonExec
import org.apache.spark.sql.execution.python.dlbridge.{ProjectedArrowEvalPython, ProjectedArrowEvalPythonExec}
import org.apache.spark.sql.functions.{col, rand}
import org.scalatest.funsuite.AnyFunSuite

/**
 * dlbridge's UDF operator ([[ProjectedArrowEvalPythonExec]]): which plans get it, and that every
 * plan gives the rows Spark's own operator gives (the same query with the operator turned off).
 */
class ProjectedArrowEvalPythonSuite extends AnyFunSuite with SparkSessionSuite with AdaptiveSparkPlanHelper {

  private lazy val vectors: DataFrame = {
    val arrays = spark.range(0, 300, 1, 2).select(col("id"),
      org.apache.spark.sql.functions.array((0 until 4).map(i => rand(i.toLong)): _*).cast("array<float>").as("features"))
    arrays.withColumn("label", (col("features")(0) > 0.5).cast("double"))
      .withColumn("features", array_to_vector(col("features")))
  }

  private lazy val model: KerasModel = new KerasEstimator().setHiddenLayers(Array(4)).setEpochs(1)
    .setBatchSize(32).setNumWorkers(1).setSeed(3L).setVerbose(0).fit(vectors)

  /** Runs `query` (collected, sorted by id), and the operators of its executed plan. */
  private def run(query: => DataFrame): (Seq[Row], Seq[SparkPlan]) = {
    val df = query
    val rows = df.collect().toSeq.sortBy(_.getAs[Long]("id"))
    (rows, collect(df.queryExecution.executedPlan) { case p => p })
  }

  /** `query`'s rows with the operator, and with Spark's; they must be the same. */
  private def bothWays(query: => DataFrame): (Seq[SparkPlan], Seq[SparkPlan]) = {
    val (ours, withOurs) = run(query)
    spark.conf.set(ProjectedArrowEvalPython.EnabledConf, "false")
    val (sparks, withSparks) = try run(query) finally spark.conf.unset(ProjectedArrowEvalPython.EnabledConf)
    assert(ours.nonEmpty && ours.length == sparks.length)
    for ((a, b) <- ours.zip(sparks); i <- 0 until a.length) (a.get(i), b.get(i)) match {
      case (u: Vector, v: Vector) => u.toArray.zip(v.toArray).foreach { case (x, y) => assert(math.abs(x - y) <= 1e-6) }
      case (u: Double, v: Double) => assert(math.abs(u - v) <= 1e-6)
      case (u, v) => assert(u == v)
    }
    (withOurs, withSparks)
  }

  private def count(plan: Seq[SparkPlan], pf: PartialFunction[SparkPlan, Any]): Int = plan.count(pf.isDefinedAt)

  private val ours: PartialFunction[SparkPlan, Any] = { case p: ProjectedArrowEvalPythonExec => p }
  private val sparks: PartialFunction[SparkPlan, Any] = { case p: ArrowEvalPythonExec => p }

  test("KerasModel.transform on Vectors runs in dlbridge's operator, with the rows Spark's operator gives") {
    val (withOurs, withSparks) = bothWays(model.transform(vectors))
    assert(count(withOurs, ours) == 1 && count(withOurs, sparks) == 0, withOurs.mkString("\n"))
    assert(count(withSparks, ours) == 0 && count(withSparks, sparks) == 1, withSparks.mkString("\n"))
    val only = withOurs.collectFirst { case p: ProjectedArrowEvalPythonExec => p }.get
    assert(only.output.map(_.name) == Seq("id", "features", "label", "prediction", "probability"))
    spark.conf.set(ProjectedArrowEvalPython.EnabledConf, "yes")
    val e = try intercept[IllegalArgumentException](model.transform(vectors).collect())
      finally spark.conf.unset(ProjectedArrowEvalPython.EnabledConf)
    assert(e.getMessage.contains(s"${ProjectedArrowEvalPython.EnabledConf} must be true or false; received 'yes'"))
  }

  test("a selection and a filter after transform, handleInvalid=skip, and two models in a row") {
    val (filtered, filteredBySpark) =
      bothWays(model.transform(vectors).filter(col("prediction") === 1.0).select("id", "probability"))
    // Spark moves the filter below the UDF's projection and evaluates the UDF for it too: twice either way
    assert(count(filtered, ours) == 2 && count(filtered, sparks) == 0, filtered.mkString("\n"))
    assert(count(filteredBySpark, sparks) == 2, filteredBySpark.mkString("\n"))
    val skip = model.copy(model.extractParamMap()).setHandleInvalid("skip")
    assert(count(bothWays(skip.transform(vectors))._1, ours) == 1)
    val second = model.copy(model.extractParamMap()).setPredictionCol("prediction2").setProbabilityCol("probability2")
    val twice = bothWays(second.transform(model.transform(vectors)))._1
    assert(count(twice, ours) == 2 && count(twice, sparks) == 0)
  }

  test("several Arrow batches per task (each written after the last one's reset) give Spark's rows") {
    def dataSent(plan: Seq[SparkPlan]): Long =
      plan.collectFirst { case p: ProjectedArrowEvalPythonExec => p.metrics("pythonDataSent").value }.get
    val (_, oneBatchPerTask) = run(model.transform(vectors))
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")
    val (withOurs, _) = try bothWays(model.transform(vectors))
      finally spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert(count(withOurs, ours) == 1, withOurs.mkString("\n"))
    // the same rows in 7-row batches: each batch sent adds its own message header, so the batches were small
    assert(dataSent(withOurs) > dataSent(oneBatchPerTask), s"${dataSent(withOurs)} vs ${dataSent(oneBatchPerTask)}")
  }

  test("a PythonTransformer over plain columns of a columnar scan keeps Spark's operator") {
    val path = s"${tempDir("projected-eval")}/x.parquet"
    spark.range(0, 200, 1, 2).select(col("id"), col("id").cast("double").as("x")).write.parquet(path)
    val plusK = new PythonTransformer().setFunction("plus_k").setParams("""{"k": 1.5}""")
      .setInputCol("x").setOutputCol("y")
    val (rows, plan) = run(plusK.transform(spark.read.parquet(path)))
    assert(count(plan, ours) == 0 && count(plan, sparks) == 1, plan.mkString("\n"))
    rows.foreach(r => assert(math.abs(r.getAs[Double]("y") - r.getAs[Double]("x") - 1.5) < 1e-12))
    // with a Vector column passing through, Spark's row path runs: dlbridge's operator takes it
    val withVector = spark.read.parquet(path).join(vectors.select("id", "features"), "id")
    assert(count(bothWays(plusK.transform(withVector))._1, ours) == 1)
  }
}
