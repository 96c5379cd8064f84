package dlbridge.python

import java.util.UUID

import scala.util.control.NonFatal

import org.apache.spark.sql.SparkSession
import org.slf4j.LoggerFactory

/**
 * Releases what a fit's Python side cached, even when the Python backend died mid-fit (its own
 * `finally` then never ran). The JVM passes a fresh name with the fit; the trainer registers each
 * frame it caches as the temp view `<name>_0`, `<name>_1`, ... in the Dataset's own session
 * (`dlbridge.trainer.input_cache`), and [[release]] drops those views, which uncaches them.
 */
private[dlbridge] object CachedInputViews {
  private val log = LoggerFactory.getLogger(getClass)

  /** A name no other fit uses, valid as a temp view name. */
  def newName(): String = s"dlbridge_fit_${UUID.randomUUID().toString.replace("-", "")}"

  /** Drops (and so uncaches) the views `<name>_0`, `<name>_1`, ... of `session`; never throws. */
  def release(session: SparkSession, name: String): Unit =
    try {
      val dropped = Iterator.from(0).map(i => s"${name}_$i").takeWhile(session.catalog.dropTempView).size
      if (dropped > 0) log.debug(s"released $dropped cached training input view(s) $name")
    } catch {
      case NonFatal(e) => log.warn(s"Could not release the cached training input views ${name}_*", e)
    }
}
