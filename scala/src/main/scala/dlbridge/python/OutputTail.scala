package dlbridge.python

import java.io.{BufferedReader, InputStream, InputStreamReader}
import java.nio.charset.StandardCharsets

import scala.collection.mutable

import org.slf4j.LoggerFactory

/**
 * Drains a child process's (merged) output on a daemon thread: every line is logged (at INFO), and
 * the last `maxLines` are kept so that a failure can show them. A line that starts with
 * [[OutputTail.ConsolePrefix]] is a line the child wants the person running the driver to see (the
 * trainer's per-epoch progress): it is printed, without the prefix, on this JVM's `System.err`
 * whatever the log configuration, like Spark's own console progress bar. `System.err` rather than
 * `System.out`: it is status, not the application's result, so `app > results.txt` stays clean,
 * and it is where Spark's console log and progress bar already go.
 */
private[dlbridge] class OutputTail(stream: InputStream, name: String, maxLines: Int = 40) {
  private val log = LoggerFactory.getLogger(classOf[OutputTail])
  private val lines = mutable.Queue.empty[String]

  private val thread = new Thread(() => pump(), s"$name-output")
  thread.setDaemon(true)
  thread.start()

  private def pump(): Unit = {
    val reader = new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8))
    try {
      var line = reader.readLine()
      while (line != null) {
        if (line.startsWith(OutputTail.ConsolePrefix)) {
          line = line.substring(OutputTail.ConsolePrefix.length)
          System.err.println(line)
          log.debug(s"[$name] $line")
        } else log.info(s"[$name] $line")
        lines.synchronized {
          lines.enqueue(line)
          if (lines.size > maxLines) lines.dequeue()
        }
        line = reader.readLine()
      }
    } catch {
      case _: java.io.IOException => // the stream closed under us: the process is gone
    } finally reader.close()
  }

  /** Waits (bounded) until the stream is fully drained, e.g. after the process exited. */
  def awaitEnd(timeoutMs: Long): Unit = thread.join(timeoutMs)

  /** The last lines seen, oldest first, newline-separated. */
  def text: String = lines.synchronized(lines.mkString("\n"))
}

private[dlbridge] object OutputTail {

  /**
   * Marks a child's output line for the driver's console. The JVM passes it to the companion in the
   * environment variable [[ConsolePrefixVariable]], so it is defined here only.
   */
  val ConsolePrefix: String = "[dlbridge-console] "

  /** The environment variable that tells the companion the [[ConsolePrefix]]. */
  val ConsolePrefixVariable: String = "DLBRIDGE_CONSOLE_PREFIX"
}
