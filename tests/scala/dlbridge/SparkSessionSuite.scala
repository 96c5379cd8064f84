package dlbridge

import org.apache.spark.sql.SparkSession
import org.scalatest.Suite

/**
 * A `local[2]` SparkSession for the suite, with the test UDF module imported into the backend: the
 * [[SharedSparkSession]] of its `extraConf`, shared with the other suites of the same conf. After the
 * suite, its cached data and temporary views are dropped (the next suite finds the session as it was)
 * and its temporary directories ([[TempDirectories]]) deleted.
 */
trait SparkSessionSuite extends TempDirectories { self: Suite =>

  /** Extra Spark conf for the suite's session. */
  protected def extraConf: Map[String, String] = Map.empty

  @transient protected var spark: SparkSession = _

  override protected def beforeAll(): Unit = {
    super.beforeAll()
    spark = SharedSparkSession.get(extraConf)
  }

  override protected def afterAll(): Unit = {
    try if (spark != null && !spark.sparkContext.isStopped) {
      spark.streams.active.foreach(_.stop())
      spark.catalog.clearCache()
      spark.catalog.listTables().collect().filter(_.isTemporary).foreach(t => spark.catalog.dropTempView(t.name))
    } finally super.afterAll()
  }
}
