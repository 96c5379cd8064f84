package dlbridge.python

import py4j.Py4JException

/**
 * Wraps a [[PythonBackend]] so that every failure of a call (a Python exception, or a backend that
 * went away) surfaces as a [[PythonBackendException]] naming the call and carrying the Python
 * type, message and traceback that py4j relays.
 */
private[dlbridge] final class GuardedBackend(inner: PythonBackend, where: String) extends PythonBackend {

  private def guard[T](call: String)(body: => T): T =
    try body
    catch {
      case e: Py4JException =>
        throw new PythonBackendException(s"Python backend ($where) failed in $call:\n${e.getMessage}", e)
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
