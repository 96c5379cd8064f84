package dlbridge

import org.apache.spark.sql.SparkSession
import org.scalatest.{BeforeAndAfterAll, Suite}

/** One `local[2]` SparkSession per suite, with the test UDF module imported into the backend. */
trait SparkSessionSuite extends BeforeAndAfterAll { self: Suite =>

  /** Extra Spark conf for the suite's session. */
  protected def extraConf: Map[String, String] = Map.empty

  @transient protected var spark: SparkSession = _

  override protected def beforeAll(): Unit = {
    super.beforeAll()
    val builder = SparkSession.builder()
      .master("local[2]")
      .appName(getClass.getSimpleName)
      .config("spark.ui.enabled", "false")
      .config("spark.sql.shuffle.partitions", "4")
      .config("spark.python.worker.reuse", "true")
      .config("spark.task.maxFailures", "1")
      .config("spark.dlbridge.python.modules", "dlbridge_test_udfs")
    extraConf.foreach { case (k, v) => builder.config(k, v) }
    spark = builder.getOrCreate()
  }

  override protected def afterAll(): Unit = {
    try if (spark != null) spark.stop()
    finally super.afterAll()
  }
}
