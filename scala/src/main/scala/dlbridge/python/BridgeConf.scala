package dlbridge.python

import org.apache.spark.SparkConf
import org.apache.spark.sql.SparkSession

/** The `spark.dlbridge.*` configuration keys of the bridge, with their defaults. */
object BridgeConf {

  /** Comma-separated Python modules imported into the backend before first use (they register stages). */
  val Modules = "spark.dlbridge.python.modules"

  /** How long the JVM waits for a companion backend to come up. Default: `120s`. */
  val StartTimeout = "spark.dlbridge.python.startTimeout"

  /** How long a stopping companion may take to exit before it is killed. Default: `10s`. */
  val StopTimeout = "spark.dlbridge.python.stopTimeout"

  /**
   * How long a JVM→Python call may go without any answer from the backend. While a call runs, the
   * JVM checks the backend's liveness with a cheap `info()` call on a second py4j connection every
   * `min(callTimeout / 4, 5s)`; the call fails when neither it nor any check has been answered for
   * this long. A call that runs for hours on a responsive backend is never cut. Default: `120s`.
   */
  val CallTimeout = "spark.dlbridge.python.callTimeout"

  private[dlbridge] def callTimeoutMs(conf: SparkConf): Long = {
    val ms = try conf.getTimeAsMs(CallTimeout, "120s") catch { case _: NumberFormatException => -1L }
    require(ms > 0, s"$CallTimeout must be a positive duration such as 120s; received ${conf.get(CallTimeout)}. " +
      s"Fix: set $CallTimeout to how long a busy backend may stay silent.")
    ms
  }

  private[dlbridge] def startTimeoutMs(conf: SparkConf): Long =
    conf.getTimeAsMs(StartTimeout, "120s")

  private[dlbridge] def stopTimeoutMs(conf: SparkConf): Long =
    conf.getTimeAsMs(StopTimeout, "10s")

  /** The modules to import: the session's runtime conf (`spark.conf.set`) wins over the SparkConf. */
  private[dlbridge] def modules(session: SparkSession): Seq[String] =
    session.conf.getOption(Modules).orElse(session.sparkContext.getConf.getOption(Modules)).getOrElse("")
      .split(",").map(_.trim).filter(_.nonEmpty).toSeq
}
