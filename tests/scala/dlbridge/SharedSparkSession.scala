package dlbridge

import org.apache.spark.sql.SparkSession

/**
 * The `local[2]` SparkSession that the ScalaTest suites share: suites that ask for the same extra conf
 * get the same session, so each does not pay again for a SparkContext, a companion backend and Python
 * workers that have imported TensorFlow. One JVM runs one SparkContext, so asking for another conf (or
 * [[SharedSparkSession.stop]], called by suites that build sessions of their own) stops the current one
 * first. The last session stops when the test JVM exits, through Spark's shutdown hook, which also stops
 * its companion and deletes Spark's temporary directories.
 */
object SharedSparkSession {

  private var current: Option[(Map[String, String], SparkSession)] = None

  /** The session with `extraConf` on top of the suites' common conf: the current one if it has that conf. */
  def get(extraConf: Map[String, String]): SparkSession = synchronized {
    current match {
      case Some((conf, session)) if conf == extraConf && !session.sparkContext.isStopped => session
      case _ =>
        stop()
        val builder = SparkSession.builder()
          .master("local[2]")
          .appName("dlbridge-scalatest")
          .config("spark.ui.enabled", "false")
          .config("spark.sql.shuffle.partitions", "4")
          .config("spark.python.worker.reuse", "true")
          .config("spark.task.maxFailures", "1")
          .config("spark.dlbridge.python.modules", "dlbridge_test_udfs")
        extraConf.foreach { case (k, v) => builder.config(k, v) }
        val session = builder.getOrCreate()
        current = Some(extraConf -> session)
        session
    }
  }

  /** Stops the shared session, if one runs (before a suite builds a session of its own). */
  def stop(): Unit = synchronized {
    current.foreach { case (_, session) => session.stop() }
    current = None
  }
}
