package dlbridge.python

import java.util.concurrent.{CompletableFuture, ExecutionException, Executors, ThreadFactory, TimeUnit}
import java.util.concurrent.TimeoutException

import py4j.{Py4JException, Py4JNetworkException}

/**
 * Wraps a [[PythonBackend]] so that no call hangs on a backend that stopped answering, and every
 * failure surfaces as a [[PythonBackendException]] naming the call.
 *
 * Each call runs on its own daemon thread, created by the caller so that it inherits the caller's
 * Spark local properties (job tags, job group) and active session. While it runs, the caller checks
 * the backend's liveness with `info()` on a second py4j connection every `min(callTimeout / 4, 5s)`
 * (py4j serves each connection on its own thread). The call fails when the backend has answered
 * neither it nor any check for `callTimeoutMs` (`spark.dlbridge.python.callTimeout`); a long call
 * on a responsive backend, such as a fit of hours, runs to its end. A timed-out companion is
 * killed, so the next [[PythonBridge.backend]] call starts a fresh one; a PySpark driver cannot be
 * restarted, and the timed-out call's thread is abandoned.
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
    val result = new CompletableFuture[T]()
    val runner = new Thread(() =>
      try result.complete(body)
      catch { case t: Throwable => result.completeExceptionally(t) }, s"dlbridge-call-$call")
    runner.setDaemon(true)
    runner.start()
    try awaitAnswer(call, result)
    catch { case e: ExecutionException => throw failure(call, e.getCause) }
  }

  /** Waits for `result`, probing liveness; throws once the backend has been silent for the timeout. */
  private def awaitAnswer[T](call: String, result: CompletableFuture[T]): T = {
    var lastAnswer = System.nanoTime()
    var probe: Option[CompletableFuture[Long]] = None
    var answer: Option[T] = None
    while (answer.isEmpty) {
      val silentMs = (System.nanoTime() - lastAnswer) / 1000000
      if (silentMs >= callTimeoutMs) throw timedOut(call)
      try answer = Some(result.get(math.min(probeIntervalMs, callTimeoutMs - silentMs), TimeUnit.MILLISECONDS))
      catch { case _: TimeoutException => }
      probe = probe match {
        case Some(p) if !p.isDone => probe
        case Some(p) =>
          if (!p.isCompletedExceptionally) lastAnswer = math.max(lastAnswer, p.join())
          Some(startProbe())
        case None => Some(startProbe())
      }
    }
    answer.get
  }

  /** An `info()` call on its own connection; completes with the time it was answered. */
  private def startProbe(): CompletableFuture[Long] =
    CompletableFuture.supplyAsync(() => { inner.info(); System.nanoTime() }, GuardedBackend.probes)

  private def timedOut(call: String): PythonBackendException = {
    companion.foreach(_.kill())
    val outcome = companion.fold(
      "dlbridge cannot restart a PySpark driver; the call's thread was abandoned. ")(c =>
      s"The companion was stopped (SIGTERM, then SIGKILL); the next call starts a fresh one. " +
        s"Last output of the companion:\n${c.outputTail}\n")
    new PythonBackendException(
      s"The dlbridge Python backend ($where) answered neither $call nor a liveness check (info()) for " +
        s"$callTimeoutMs ms (${BridgeConf.CallTimeout}): it is stopped, deadlocked or starved. $outcome" +
        s"Fix: if the backend was only busy (e.g. in a native call holding Python's GIL), raise " +
        s"${BridgeConf.CallTimeout}; otherwise find the cause (a stopped process, a deadlock, memory " +
        "exhaustion) in the output above and the driver's logs, and run the stage again.")
  }

  private def failure(call: String, cause: Throwable): Throwable = cause match {
    case e: Py4JException =>
      // A lost connection may precede the exit by a moment; a Python exception needs no wait.
      val waitMs = if (e.isInstanceOf[Py4JNetworkException]) 2000L else 0L
      companion.flatMap(c => c.exitCode(waitMs).map(code => (c, code))) match {
        case Some((c, code)) =>
          new PythonBackendException(
            s"The dlbridge Python backend ($where) exited with code $code during $call; the next call starts " +
              s"a fresh one. Last output of the companion:\n${c.outputTail}\nFix: find the cause in that " +
              "output (exit code 137 or -9: killed, e.g. by the out-of-memory killer; then give the driver " +
              "more memory) and run the stage again.", e)
        case None => new PythonBackendException(s"Python backend ($where) failed in $call:\n${e.getMessage}", e)
      }
    case other => other
  }

  override def info(): String = guard("info")(inner.info())

  override def registeredNames(): String = guard("registeredNames")(inner.registeredNames())

  override def outputType(function: String, paramsJson: String): String =
    guard(s"outputType($function)")(inner.outputType(function, paramsJson))

  override def buildUdf(function: String, paramsJson: String): AnyRef =
    guard(s"buildUdf($function)")(inner.buildUdf(function, paramsJson))

  override def invoke(entry: String, argsJson: String, handles: Array[AnyRef]): AnyRef =
    guard(s"invoke($entry)")(inner.invoke(entry, argsJson, handles))
}

private object GuardedBackend {

  /** Daemon threads for liveness checks (one per waiting call at most). */
  private val probes = Executors.newCachedThreadPool(new ThreadFactory {
    override def newThread(r: Runnable): Thread = {
      val t = new Thread(r, "dlbridge-backend-probe")
      t.setDaemon(true)
      t
    }
  })
}
