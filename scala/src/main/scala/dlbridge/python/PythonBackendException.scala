package dlbridge.python

import org.apache.spark.SparkException

/**
 * A failure of the Python side of dlbridge: a Python exception raised in the backend (the message
 * carries its type, message and traceback), or a companion process that could not start (the
 * message names the interpreter, its exit code, the tail of its output and the fix).
 */
class PythonBackendException(message: String, cause: Throwable = null)
  extends SparkException(message, cause)
