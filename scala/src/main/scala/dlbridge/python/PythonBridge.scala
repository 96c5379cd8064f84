package dlbridge.python

import scala.collection.mutable
import scala.util.control.NonFatal

import org.apache.spark.SparkContext
import org.apache.spark.api.java.JavaSparkContext
import org.apache.spark.ml.dlbridge.SparkShims
import org.apache.spark.scheduler.{SparkListener, SparkListenerApplicationEnd}
import org.apache.spark.sql.SparkSession
import org.slf4j.LoggerFactory

/**
 * The one entry to the Python side of the driver: one [[PythonBackend]] per SparkContext.
 *
 * In a PySpark application the user's own Python driver registers its backend (through
 * [[register]]) before the first Python-backed stage runs, so no second process is started. In a
 * JVM application the first call to [[backend]] starts a companion `python -m dlbridge.backend`
 * (see [[CompanionProcess]]), which stops with the SparkContext. Nothing starts as a side effect
 * of loading this class.
 */
object PythonBridge {
  private val log = LoggerFactory.getLogger(getClass)

  private final case class Handle(backend: PythonBackend, companion: Option[CompanionProcess]) {
    def usable: Boolean = companion.forall(_.isAlive)
  }

  private val handles = mutable.Map.empty[SparkContext, Handle]
  private val watched = mutable.Set.empty[SparkContext]

  /** The backend for `session`'s SparkContext, starting a companion process on first use. */
  def backend(session: SparkSession): PythonBackend = handles.synchronized {
    val sc = session.sparkContext
    require(!sc.isStopped, "The SparkContext is stopped: dlbridge needs a running SparkContext.")
    handles.get(sc).filter(_.usable) match {
      case Some(handle) => handle.backend
      case None =>
        handles.remove(sc).flatMap(_.companion).foreach { c =>
          log.warn(s"dlbridge Python backend ${c.pid} is gone (exit code ${c.exitCode(0).getOrElse("?")}); " +
            "starting a fresh one")
          c.kill() // releases its gateway port
        }
        val timeoutMs = BridgeConf.callTimeoutMs(sc.getConf)
        val companion = CompanionProcess.start(session)
        watch(sc)
        val handle = Handle(new GuardedBackend(companion.backend, Some(companion), timeoutMs), Some(companion))
        handles(sc) = handle
        handle.backend
    }
  }

  /** Registers the in-process backend of a PySpark driver for `jsc` (called from Python). */
  def register(jsc: JavaSparkContext, backend: PythonBackend): Unit = handles.synchronized {
    val sc = jsc.sc
    handles.remove(sc).flatMap(_.companion).foreach(_.stop())
    handles(sc) = Handle(new GuardedBackend(backend, None, BridgeConf.callTimeoutMs(sc.getConf)), None)
    watch(sc)
  }

  /** Whether a backend is registered or running for `jsc` (called from Python). */
  def isRegistered(jsc: JavaSparkContext): Boolean = handles.synchronized(handles.contains(jsc.sc))

  /** The process id of the companion backend of `sc`, or -1 if it has none (PySpark, not started). */
  def companionPid(sc: SparkContext): Long = handles.synchronized {
    handles.get(sc).flatMap(_.companion).map(_.pid).getOrElse(-1L)
  }

  /** Stops the companion of `sc` (if any) and forgets its backend. Called when `sc` stops. */
  def stop(sc: SparkContext): Unit = {
    val handle = handles.synchronized { watched -= sc; handles.remove(sc) }
    handle.flatMap(_.companion).foreach { c =>
      try c.stop()
      catch { case NonFatal(e) => log.warn(s"Stopping dlbridge Python backend ${c.pid} failed", e) }
    }
  }

  private def watch(sc: SparkContext): Unit = if (watched.add(sc)) {
    sc.addSparkListener(new SparkListener {
      override def onApplicationEnd(end: SparkListenerApplicationEnd): Unit = stop(sc)
    })
    shutdownHook
  }

  /** One JVM shutdown hook for all SparkContexts, installed on first use. */
  private lazy val shutdownHook: AnyRef =
    SparkShims.addShutdownHook(() => handles.synchronized(handles.keys.toList).foreach(stop))
}
