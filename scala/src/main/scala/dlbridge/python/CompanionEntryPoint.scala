package dlbridge.python

import scala.concurrent.Promise

import org.apache.spark.api.java.JavaSparkContext
import org.apache.spark.sql.SparkSession

/**
 * What the companion Python process sees as `gateway.entry_point`: the SparkContext and session it
 * wraps, the modules to import, and the two ways to report back (`register` or `fail`).
 * Public only because py4j calls it by reflection; not part of the user API.
 */
class CompanionEntryPoint private[dlbridge] (session: SparkSession, python: String) {
  private[dlbridge] val registered: Promise[PythonBackend] = Promise()

  /** The JVM SparkContext, wrapped the way PySpark expects it. */
  def javaSparkContext(): JavaSparkContext = new JavaSparkContext(session.sparkContext)

  /** The JVM SparkSession the Python side wraps. */
  def sparkSession(): SparkSession = session

  /** The modules named by `spark.dlbridge.python.modules` (session conf first, then SparkConf). */
  def modules(): String = BridgeConf.modules(session).mkString(",")

  /** Called by the companion once its backend is ready. */
  def register(backend: PythonBackend): Unit = registered.trySuccess(backend)

  /** Called by the companion when it cannot start; `details` holds the Python traceback. */
  def fail(details: String): Unit =
    registered.tryFailure(new PythonBackendException(
      s"The dlbridge Python backend '$python -m dlbridge.backend' failed to start:\n$details"))
}
