package dlbridge.ml.param

import org.apache.spark.ml.param.{Param, Params}

/** The registered Python function a stage runs, and its keyword arguments (shared by the Python stages). */
trait HasPythonFunction extends Params {

  /**
   * Name of the registered Python stage to run: a transformer registered with
   * `@dlbridge.register_transformer("name", returns=...)`, or an estimator registered with
   * `@dlbridge.register_estimator("name", returns=...)`, in a module the Python backend imports
   * (`spark.dlbridge.python.modules`, or imported by the PySpark driver). No default: it must be set.
   * @group param
   */
  final val function: Param[String] = new Param[String](this, "function",
    "name of the registered Python transformer or estimator to run (see dlbridge.register_transformer and " +
      "dlbridge.register_estimator)",
    (name: String) => name != null && name.trim.nonEmpty)

  /** @group getParam */
  final def getFunction: String = $(function)

  /**
   * Keyword arguments of the Python function(s), as a JSON object. Checked against their
   * signatures before any job runs. Default: `{}`.
   * @group param
   */
  final val functionParams: JsonObjectParam = new JsonObjectParam(this, "functionParams",
    "keyword arguments of the Python function, as a JSON object (default: {})")

  /** @group getParam */
  final def getFunctionParams: String = $(functionParams)

  setDefault(functionParams -> "{}")

  /** Fails naming the stage and the fix when `function` is not set. */
  protected def requireFunction(): Unit =
    require(isDefined(function), s"$uid: param function is not set: call setFunction(<registered name>).")
}
