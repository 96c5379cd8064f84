package dlbridge.python

import java.io.{BufferedReader, InputStream, InputStreamReader}
import java.nio.charset.StandardCharsets

import scala.collection.mutable

import org.slf4j.LoggerFactory

/**
 * Drains a child process's (merged) output on a daemon thread: every line is logged, and the last
 * `maxLines` are kept so that a failure can show them.
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
        log.info(s"[$name] $line")
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
