package dlbridge.python

import java.util.concurrent.{CompletableFuture, Executors, ThreadFactory, TimeUnit}

import org.slf4j.LoggerFactory
import py4j.{Py4JException, Py4JNetworkException}

/**
 * Wraps a [[PythonBackend]] so that no call hangs on a backend that stopped answering, and every
 * failure surfaces as a [[PythonBackendException]] naming the call.
 *
 * Each call runs on the caller's own thread (so it keeps the caller's Spark local properties and
 * active session, and py4j's pinned-thread mode reuses that thread's connection instead of opening
 * one per call). While it runs, a watchdog checks the backend's liveness with `info()` on a
 * separate, long-lived connection every `min(callTimeout / 4, 5s)`. When the backend has answered
 * neither the call nor any check for `callTimeoutMs` (`spark.dlbridge.python.callTimeout`), a
 * companion is killed, which fails the waiting call at once with a message naming the call, the
 * key and the fix, and the next [[PythonBridge.backend]] call starts a fresh companion. A long call
 * on a responsive backend, such as a fit of hours, runs to its end. A PySpark driver's backend is
 * the user's own process and cannot be killed: there the watchdog logs the same message as an error.
 *
 * @param companion the companion process behind `inner`, or None for a PySpark driver's backend
 */
private[dlbridge] final class GuardedBackend(
    inner: PythonBackend,
    companion: Option[CompanionProcess],
    callTimeoutMs: Long) extends PythonBackend {

  private val where = companion.fold("the PySpark driver")(c => s"companion pid ${c.pid}")
  private val probeIntervalMs = math.max(10L, math.min(callTimeoutMs / 4, 5000L))

  private def guard[T](call: String)(body: => T): T = {
    val watchdog = new Watchdog(call)
    try body
    catch {
      case e: Py4JException if watchdog.fired => throw timedOut(call, e)
      case e: Py4JException => throw failure(call, e)
    } finally watchdog.cancel()
  }

  /** Probes the backend while one call runs; fires once it has been silent for the timeout. */
  private final class Watchdog(call: String) extends Runnable {
    @volatile private var lastAnswer = System.nanoTime()
    @volatile var fired = false
    private var probe: Option[CompletableFuture[Long]] = None
    private val task = GuardedBackend.timer.scheduleWithFixedDelay(this, probeIntervalMs, probeIntervalMs,
      TimeUnit.MILLISECONDS)

    override def run(): Unit = synchronized {
      probe.filter(p => p.isDone && !p.isCompletedExceptionally).foreach(p => lastAnswer = math.max(lastAnswer, p.join()))
      if (probe.forall(_.isDone)) probe = Some(CompletableFuture.supplyAsync(() => {
        inner.info(); System.nanoTime()
      }, GuardedBackend.probes))
      if (!fired && (System.nanoTime() - lastAnswer) / 1000000 >= callTimeoutMs) {
        fired = true
        task.cancel(false)
        companion match {
          case Some(c) => c.kill() // fails the waiting call, which reports the timeout
          case None => GuardedBackend.log.error(timedOut(call).getMessage)
        }
      }
    }

    def cancel(): Unit = task.cancel(false)
  }

  private def timedOut(call: String, cause: Throwable = null): PythonBackendException = {
    val outcome = companion.fold(
      "dlbridge cannot stop a PySpark driver's backend; the call keeps waiting for it. ")(c =>
      s"The companion was stopped (SIGTERM, then SIGKILL); the next call starts a fresh one. " +
        s"Last output of the companion:\n${c.outputTail}\n")
    new PythonBackendException(
      s"The dlbridge Python backend ($where) answered neither $call nor a liveness check (info()) for " +
        s"$callTimeoutMs ms (${BridgeConf.CallTimeout}): it is stopped, deadlocked or starved. $outcome" +
        s"Fix: if the backend was only busy (e.g. in a native call holding Python's GIL), raise " +
        s"${BridgeConf.CallTimeout}; otherwise find the cause (a stopped process, a deadlock, memory " +
        "exhaustion) in the output above and the driver's logs, and run the stage again.", cause)
  }

  private def failure(call: String, cause: Throwable): Throwable = cause match {
    case e: Py4JException =>
      // A lost connection may precede the exit by a moment; a Python exception needs no wait. py4j's
      // callback client reports a failed send as a Py4JException caused by a Py4JNetworkException.
      val lostConnection = Iterator.iterate[Throwable](e)(_.getCause).takeWhile(_ != null)
        .exists(_.isInstanceOf[Py4JNetworkException])
      val waitMs = if (lostConnection) 2000L else 0L
      companion.flatMap(c => c.exitCode(waitMs).map(code => (c, code))) match {
        case Some((c, code)) =>
          new PythonBackendException(
            s"The dlbridge Python backend ($where) exited with code $code during $call; the next call starts " +
              s"a fresh one. Last output of the companion:\n${c.outputTail}\nFix: find the cause in that " +
              "output (exit code 137 or -9: killed, e.g. by the out-of-memory killer; then give the driver " +
              "more memory) and run the stage again.", e)
        case None => new PythonBackendException(s"Python backend ($where) failed in $call: ${pythonError(e.getMessage)}", e)
      }
    case other => other
  }

  /**
   * A Python exception as the user reads it: its last line (type and message) first, then the
   * traceback, without py4j's own preamble.
   */
  private def pythonError(py4jMessage: String): String = {
    val text = Option(py4jMessage).getOrElse("").replace(
      "An exception was raised by the Python Proxy. Return Message: ", "").trim
    val lines = text.linesIterator.toSeq
    val last = lines.lastIndexWhere(l => l.nonEmpty && !l.startsWith(" ") && l.contains(": "))
    if (last < 0) text
    else (lines(last) +: lines.drop(last + 1)).mkString("\n") + "\n\nPython traceback:\n" + lines.take(last).mkString("\n")
  }

  override def info(): String = guard("info")(inner.info())

  override def registeredNames(): String = guard("registeredNames")(inner.registeredNames())

  override def outputType(function: String, kind: String, paramsJson: String): String =
    guard(s"outputType($function)")(inner.outputType(function, kind, paramsJson))

  override def buildUdf(function: String, paramsJson: String, state: java.util.Map[String, Array[Byte]]): AnyRef =
    guard(s"buildUdf($function)")(inner.buildUdf(function, paramsJson, state))

  override def fit(function: String, paramsJson: String, dataset: AnyRef, fitId: String,
      initialState: java.util.Map[String, Array[Byte]], stageUid: String): java.util.Map[String, Array[Byte]] =
    guard(s"fit($function)")(inner.fit(function, paramsJson, dataset, fitId, initialState, stageUid))

  override def loadState(function: String, paramsJson: String,
      state: java.util.Map[String, Array[Byte]]): java.util.Map[String, Array[Byte]] =
    guard(s"loadState($function)")(inner.loadState(function, paramsJson, state))
}

private object GuardedBackend {
  private val log = LoggerFactory.getLogger(classOf[GuardedBackend])

  private def daemons(name: String): ThreadFactory = (r: Runnable) => {
    val t = new Thread(r, name)
    t.setDaemon(true)
    t
  }

  /** Schedules the watchdogs of all waiting calls. */
  private val timer = Executors.newSingleThreadScheduledExecutor(daemons("dlbridge-backend-watchdog"))

  /**
   * Long-lived daemon threads for liveness checks. A fixed set (threads never exit), because with
   * py4j's pinned threads every JVM thread that calls Python keeps a connection of its own.
   */
  private val probes = Executors.newFixedThreadPool(4, daemons("dlbridge-backend-probe"))
}
