package org.apache.spark.sql.execution.python.dlbridge

import java.lang.ref.WeakReference

import scala.collection.mutable.ArrayBuffer

import org.apache.spark.api.python.PythonFunction
import org.apache.spark.sql.SparkSession
import org.apache.spark.sql.catalyst.expressions.{Attribute, PythonUDF}
import org.apache.spark.sql.catalyst.planning.PhysicalOperation
import org.apache.spark.sql.catalyst.plans.logical.{ArrowEvalPython, LogicalPlan}
import org.apache.spark.sql.classic
import org.apache.spark.sql.execution.{SparkPlan, SparkStrategy}
import org.apache.spark.sql.internal.SQLConf
import org.apache.spark.sql.types.{ArrayType, DataType, MapType, StructType, UserDefinedType}

/**
 * Plans dlbridge's own Arrow UDFs with [[ProjectedArrowEvalPythonExec]] instead of Spark's
 * `ArrowEvalPythonExec`: a planning strategy that a session gets the first time a dlbridge stage
 * adds a UDF column in it ([[install]]), and that leaves every other plan to Spark.
 *
 * It applies where Spark's operator would evaluate the UDF row by row: when an argument is
 * computed (the Keras stages' packed features), or when the input holds a user-defined type such
 * as an ML `Vector`. A UDF over plain columns of a columnar source keeps Spark's columnar path.
 * `spark.dlbridge.sql.projectedArrowEval.enabled=false` turns it off (Spark's operator then runs
 * dlbridge's UDFs too; the results are the same).
 */
object ProjectedArrowEvalPython extends SparkStrategy {

  /** The SQL conf that turns the operator off; on by default. */
  val EnabledConf = "spark.dlbridge.sql.projectedArrowEval.enabled"

  /**
   * The Python functions of the UDFs dlbridge built, told apart by identity (a function's own
   * `equals` and `hashCode` go through its pickled command), and weakly held: a function that no
   * stage and no plan holds any more is dropped.
   */
  private val dlbridgeFunctions = ArrayBuffer.empty[WeakReference[PythonFunction]]

  /** Marks `function` as the function of a UDF dlbridge built, which this strategy may plan. */
  def register(function: PythonFunction): Unit = dlbridgeFunctions.synchronized {
    dlbridgeFunctions.filterInPlace(_.get != null)
    if (!isRegistered(function)) dlbridgeFunctions += new WeakReference(function)
  }

  private def isRegistered(function: PythonFunction): Boolean = dlbridgeFunctions.synchronized {
    dlbridgeFunctions.exists(_.get eq function)
  }

  /**
   * The Spark release whose internals [[ProjectedArrowEvalPythonExec]] is built on (its Arrow
   * evaluator, row queue and runner conf); on any other, Spark's own operator runs dlbridge's UDFs.
   */
  val SparkRelease = "4.3."

  /**
   * Adds this strategy to `session`'s planner once: a JVM session of Spark [[SparkRelease]]x; a no-op
   * for any other.
   */
  def install(session: SparkSession): Unit = session match {
    case jvmSession: classic.SparkSession if org.apache.spark.SPARK_VERSION.startsWith(SparkRelease) =>
      val experimental = jvmSession.experimental
      experimental.synchronized {
        if (!experimental.extraStrategies.contains(this)) experimental.extraStrategies :+= this
      }
    case _ =>
  }

  override def apply(plan: LogicalPlan): Seq[SparkPlan] = plan match {
    case PhysicalOperation(projectList, Seq(), ArrowEvalPython(udfs, resultAttrs, child, evalType))
        if enabled && udfs.forall(isOwnUnchained) && evaluatedByRow(udfs, child.output) =>
      ProjectedArrowEvalPythonExec(projectList, udfs, resultAttrs, planLater(child), evalType) :: Nil
    case _ => Nil
  }

  private def enabled: Boolean = booleanConf(SQLConf.get, EnabledConf, default = true,
    "set it to false to run dlbridge's UDFs with Spark's own operator, or unset it.")

  /** A `true`/`false` SQL conf of dlbridge; any other value fails, naming the key, the value and `fix`. */
  private[dlbridge] def booleanConf(conf: SQLConf, key: String, default: Boolean, fix: String): Boolean =
    conf.getConfString(key, default.toString).trim.toLowerCase match {
      case "true" => true
      case "false" => false
      case other => throw new IllegalArgumentException(s"$key must be true or false; received '$other'. Fix: $fix")
    }

  private def isOwnUnchained(udf: PythonUDF): Boolean =
    isRegistered(udf.func) && !udf.children.exists(_.exists(_.isInstanceOf[PythonUDF]))

  /** Whether Spark's operator would take its row path here (see `dlbridge.ml.PythonUdfColumns`). */
  private def evaluatedByRow(udfs: Seq[PythonUDF], input: Seq[Attribute]): Boolean =
    udfs.exists(_.children.exists(!_.isInstanceOf[Attribute])) || input.exists(a => holdsUdt(a.dataType))

  /** Whether `dataType` is, or holds, a user-defined type (which Spark's columnar path rejects). */
  def holdsUdt(dataType: DataType): Boolean = dataType match {
    case _: UserDefinedType[_] => true
    case s: StructType => s.fields.exists(f => holdsUdt(f.dataType))
    case a: ArrayType => holdsUdt(a.elementType)
    case m: MapType => holdsUdt(m.keyType) || holdsUdt(m.valueType)
    case _ => false
  }
}
