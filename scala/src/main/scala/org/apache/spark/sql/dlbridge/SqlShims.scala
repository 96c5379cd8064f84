package org.apache.spark.sql.dlbridge

import org.apache.spark.sql.Column
import org.apache.spark.sql.catalyst.expressions.Expression
import org.apache.spark.sql.classic.ExpressionUtils
import org.apache.spark.sql.internal.UnresolvedAttribute

/**
 * dlbridge's only file in Spark SQL's namespace (as [[org.apache.spark.ml.dlbridge.SparkShims]] is
 * in Spark ML's): it wraps a Catalyst expression of dlbridge's own as a `Column`, and tells a column
 * reference from a computed column, which Spark 4 allows only inside `org.apache.spark.sql`.
 */
object SqlShims {

  /** `expression` as a Column of the classic (JVM) Dataset API. */
  def column(expression: Expression): Column = ExpressionUtils.column(expression)

  /** Whether `c` names a column as it is (`col("x")`), rather than computing a value from columns. */
  def isColumnReference(c: Column): Boolean = c.node match {
    case _: UnresolvedAttribute => true
    case _ => false
  }
}
