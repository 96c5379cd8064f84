package dlbridge

import java.util.Properties

import scala.util.Try

/**
 * The version of this dlbridge jar, read from the resource `dlbridge/version.properties` that the
 * build writes from `python/dlbridge/_version.py` (the one place the version is written).
 *
 * The Python side compares it with its own `dlbridge.__version__` the first time a JVM stage reaches
 * the Python backend (`dlbridge.versions.check_jar`), and saved models record it in their metadata.
 */
object DlbridgeVersion {

  /** The version, e.g. `0.1.0`; `unknown` if the jar was built without its version resource. */
  lazy val version: String = {
    val in = Option(getClass.getResourceAsStream("/dlbridge/version.properties"))
    in.flatMap { stream =>
      try {
        val props = new Properties()
        props.load(stream)
        Option(props.getProperty("version"))
      } finally stream.close()
    }.getOrElse("unknown")
  }

  /** Where the dlbridge classes were loaded from (the jar's path or URL), for error messages. */
  lazy val location: String =
    Try(getClass.getProtectionDomain.getCodeSource.getLocation.toString).getOrElse("(unknown location)")

  /** [[version]], for py4j and Java callers. */
  def get(): String = version

  /** [[location]], for py4j and Java callers. */
  def jarLocation(): String = location
}
