package dlbridge.python

import java.net.InetAddress
import java.security.SecureRandom
import java.util.concurrent.{TimeUnit, TimeoutException}

import scala.concurrent.Await
import scala.concurrent.duration._
import scala.util.control.NonFatal

import org.apache.spark.sql.SparkSession
import org.slf4j.LoggerFactory
import py4j.GatewayServer

/**
 * A companion `python -m dlbridge.backend` process for a JVM application, connected by a py4j
 * gateway bound to loopback and authenticated by a fresh 256-bit secret that reaches the child
 * through its environment (never argv). The child lives until its stdin closes: when [[stop]] is
 * called, or when this JVM dies.
 */
private[dlbridge] final class CompanionProcess private (
    val process: Process,
    gateway: GatewayServer,
    output: OutputTail,
    val backend: PythonBackend,
    stopTimeoutMs: Long) {

  /** The operating-system process id of the child. */
  def pid: Long = process.pid()

  /**
   * Whether the child still runs. `Process.isAlive` alone can lag the exit by a moment: the JDK's
   * reaper completes the exit future (which `ProcessHandle.onExit` waiters see) before it marks the
   * `Process` exited. The handle asks the operating system, which no longer knows a reaped pid.
   */
  def isAlive: Boolean = process.isAlive && process.toHandle.isAlive

  /** The last lines the child wrote (stdout and stderr merged), oldest first. */
  def outputTail: String = output.text

  /** The child's exit code, waiting up to `waitMs` for it to exit; None while it still runs. */
  def exitCode(waitMs: Long): Option[Int] =
    if (process.waitFor(waitMs, TimeUnit.MILLISECONDS)) Some(process.exitValue()) else None

  /** Closes the child's stdin, waits for it to exit (then kills it) and shuts the gateway down. */
  def stop(): Unit = {
    try process.getOutputStream.close()
    catch { case NonFatal(_) => }
    if (!process.waitFor(stopTimeoutMs, TimeUnit.MILLISECONDS)) terminateThenKill()
    gateway.shutdown()
    output.awaitEnd(2000)
  }

  /**
   * Stops a child that no longer answers: SIGTERM, then SIGKILL after 2 s (a stopped process only
   * yields to the latter), then shuts the gateway down, which fails the calls still waiting on it.
   */
  def kill(): Unit = {
    terminateThenKill()
    gateway.shutdown()
    output.awaitEnd(2000)
  }

  private def terminateThenKill(): Unit = {
    process.destroy()
    if (!process.waitFor(2, TimeUnit.SECONDS)) process.destroyForcibly().waitFor(5, TimeUnit.SECONDS)
  }
}

private[dlbridge] object CompanionProcess {
  private val log = LoggerFactory.getLogger(classOf[CompanionProcess])

  /** Starts the companion for `session` and blocks until its backend registered (bounded). */
  def start(session: SparkSession): CompanionProcess = {
    val conf = session.sparkContext.getConf
    val python = PythonExecutable.forDriver(conf)
    val secret = newSecret()
    val entry = new CompanionEntryPoint(session, python)
    val loopback = InetAddress.getLoopbackAddress
    val gateway = new GatewayServer.GatewayServerBuilder(entry)
      .javaPort(0).javaAddress(loopback)
      .callbackClient(0, loopback, secret)
      .authToken(secret)
      .build()
    gateway.start(true)
    val process =
      try launch(python, gateway.getListeningPort, secret, PythonExecutable.forExecutors(conf))
      catch {
        case e: java.io.IOException =>
          gateway.shutdown()
          throw new PythonBackendException(
            s"Could not run the Python interpreter '$python' for the dlbridge backend: ${e.getMessage}. " +
              "Fix: install Python 3 with `pip install dlbridge`, or point spark.pyspark.driver.python " +
              "(or spark.pyspark.python / PYSPARK_PYTHON) at an interpreter that has it.", e)
      }
    val output = new OutputTail(process.getInputStream, s"dlbridge-backend-${process.pid()}")
    process.onExit().thenRun(() => entry.registered.tryFailure(exitedEarly(python, process, output)))
    val timeoutMs = BridgeConf.startTimeoutMs(conf)
    val started = System.nanoTime()
    try {
      val backend = Await.result(entry.registered.future, timeoutMs.millis)
      log.info(f"dlbridge Python backend started (pid ${process.pid()}, $python) in " +
        f"${(System.nanoTime() - started) / 1e9}%.1f s")
      new CompanionProcess(process, gateway, output, backend, BridgeConf.stopTimeoutMs(conf))
    } catch {
      case e: Throwable =>
        process.destroyForcibly().waitFor(5, TimeUnit.SECONDS)
        gateway.shutdown()
        output.awaitEnd(2000)
        throw startFailure(e, python, timeoutMs, output)
    }
  }

  private def launch(python: String, port: Int, secret: String, executorPython: String): Process = {
    val builder = new ProcessBuilder(python, "-m", "dlbridge.backend").redirectErrorStream(true)
    val env = builder.environment()
    env.put("DLBRIDGE_GATEWAY_PORT", port.toString)
    env.put("DLBRIDGE_GATEWAY_SECRET", secret)
    env.put("PYSPARK_PYTHON", executorPython)
    env.put("PYTHONUNBUFFERED", "1")
    env.put(OutputTail.ConsolePrefixVariable, OutputTail.ConsolePrefix)
    builder.start()
  }

  private def newSecret(): String = {
    val bytes = new Array[Byte](32)
    new SecureRandom().nextBytes(bytes)
    bytes.map(b => f"$b%02x").mkString
  }

  private def exitedEarly(python: String, process: Process, output: OutputTail): PythonBackendException = {
    output.awaitEnd(2000)
    new PythonBackendException(
      s"The dlbridge Python backend '$python -m dlbridge.backend' exited with code ${process.exitValue()} " +
        s"before it registered. Last output:\n${output.text}\n" + fix(python))
  }

  private def startFailure(e: Throwable, python: String, timeoutMs: Long, output: OutputTail): Throwable =
    e match {
      case p: PythonBackendException => p
      case _: TimeoutException =>
        new PythonBackendException(
          s"The dlbridge Python backend '$python -m dlbridge.backend' did not register within ${timeoutMs} ms " +
            s"(${BridgeConf.StartTimeout}). Last output:\n${output.text}\n" +
            s"Fix: raise ${BridgeConf.StartTimeout} if the interpreter is slow to import its packages. " + fix(python))
      case other => new PythonBackendException(s"The dlbridge Python backend failed to start: $other", other)
    }

  private def fix(python: String): String =
    s"Fix: run `$python -m pip install dlbridge` (it brings pyspark, pyarrow and TensorFlow), or set " +
      "spark.pyspark.driver.python / spark.pyspark.python to an interpreter that has dlbridge installed."

}
