package org.apache.spark.sql.execution.python.dlbridge

import org.apache.spark.sql.catalyst.expressions.Expression

/**
 * An expression whose generated code can write each row's value into one array that it keeps from
 * row to row, instead of allocating a new array per row.
 *
 * A value that is reused this way is valid only until the next row is evaluated, so only a consumer
 * that copies each value at once may ask for it. [[ProjectedArrowEvalPythonExec]] does: it evaluates
 * the UDFs' arguments with [[withReusedBuffer]], and Spark's Arrow writer copies each argument row
 * into the batch before the next one is evaluated. Anywhere else (a row that is cached, buffered or
 * collected keeps a reference to its `byte[]`), the expression as written allocates per row.
 */
trait ReusableBufferExpression extends Expression {

  /** This expression, with its generated code reusing one output array from row to row. */
  def withReusedBuffer: Expression
}
