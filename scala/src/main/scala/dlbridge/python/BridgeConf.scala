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

  private[dlbridge] def startTimeoutMs(conf: SparkConf): Long =
    conf.getTimeAsMs(StartTimeout, "120s")

  private[dlbridge] def stopTimeoutMs(conf: SparkConf): Long =
    conf.getTimeAsMs(StopTimeout, "10s")

  /** The modules to import: the session's runtime conf (`spark.conf.set`) wins over the SparkConf. */
  private[dlbridge] def modules(session: SparkSession): Seq[String] =
    session.conf.getOption(Modules).orElse(session.sparkContext.getConf.getOption(Modules)).getOrElse("")
      .split(",").map(_.trim).filter(_.nonEmpty).toSeq
}
