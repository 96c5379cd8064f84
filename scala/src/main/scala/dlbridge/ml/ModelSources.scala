package dlbridge.ml

import dlbridge.ml.param.JsonObjectParam

import org.apache.spark.ml.param.{Param, Params}
import org.apache.spark.sql.SparkSession

/**
 * The rules for model sources that name code. A stage (or a saved pipeline) can name a model
 * factory; only the running application grants one: by registering it in Python with
 * `@dlbridge.register_model_factory("name")`, or by listing its `module:function` in
 * `spark.dlbridge.modelFactories.allowed`. Registered names are checked by the Python backend at
 * fit (before anything is imported or any job runs); a `module:function` is also checked here
 * when a stage is loaded, without starting Python.
 */
object ModelSources {

  /** Comma-separated `module:function` model factories the application trusts. Default: none. */
  val AllowedFactories = "spark.dlbridge.modelFactories.allowed"

  private val ModulesConf = "spark.dlbridge.python.modules"
  private val FactoryName = "[A-Za-z_][\\w.\\-]*"
  private val ModuleFunction = "[A-Za-z_][\\w.]*:[A-Za-z_]\\w*"

  /** True iff `value` has the `module:function` form (as opposed to a registered name). */
  def isModuleFunction(value: String): Boolean = value != null && value.matches(ModuleFunction)

  /** The allowed `module:function` names: the session's runtime conf wins over the SparkConf. */
  def allowedFactories(session: SparkSession): Set[String] =
    session.conf.getOption(AllowedFactories).orElse(session.sparkContext.getConf.getOption(AllowedFactories))
      .getOrElse("").split(",").map(_.trim).filter(_.nonEmpty).toSet

  /**
   * Refuses a stage loaded from `path` whose `modelFactory` is a `module:function` that the
   * running application does not list in [[AllowedFactories]] (the saved file cannot grant it).
   */
  private[ml] def checkLoaded(stage: KerasParams, path: String, session: SparkSession): Unit = {
    val factory = stage.getModelFactory
    require(!isModuleFunction(factory) || allowedFactories(session).contains(factory),
      s"${stage.uid} loaded from $path names modelFactory '$factory', a module:function that is not listed in " +
        s"$AllowedFactories, so it is refused before anything is imported (a saved stage can name a factory, " +
        "never grant it). Fix: register the factory with @dlbridge.register_model_factory(\"name\") in a module " +
        s"listed in $ModulesConf and set modelFactory to that name, or list '$factory' in $AllowedFactories " +
        "(SparkConf or spark.conf.set) if you trust it.")
  }

  private[ml] def isFactoryValue(value: String): Boolean =
    value != null && (value.isEmpty || value.matches(FactoryName) || isModuleFunction(value))

  private[ml] def isConfigValue(value: String): Boolean =
    value != null && (value.isEmpty || JsonObjectParam.isObject(value))
}

/** The `modelFactory` param: empty, a registered factory name, or a `module:function`. */
class ModelFactoryParam(parent: Params, name: String, doc: String)
  extends Param[String](parent, name, doc, (value: String) => ModelSources.isFactoryValue(value)) {

  override def validate(value: String): Unit = require(ModelSources.isFactoryValue(value),
    s"${parent.uid} parameter $name expects the name of a model factory registered with " +
      "@dlbridge.register_model_factory (letters, digits, '_', '.', '-') or a module:function listed in " +
      s"${ModelSources.AllowedFactories}; received: ${Option(value).getOrElse("null")}")
}

/** The `modelConfig` param: empty or a Keras JSON config (a JSON object); never a path or a factory. */
class ModelConfigParam(parent: Params, name: String, doc: String)
  extends Param[String](parent, name, doc, (value: String) => ModelSources.isConfigValue(value)) {

  override def validate(value: String): Unit = require(ModelSources.isConfigValue(value),
    s"${parent.uid} parameter $name expects a Keras model's JSON config (a JSON object, as from " +
      s"model.to_json()); received: ${Option(value).map(_.take(80)).getOrElse("null")}. Fix: for a factory " +
      "use modelFactory, for a .keras file use modelFile.")
}
