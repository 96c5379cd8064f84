package dlbridge.ml

import org.apache.spark.sql.{Column, DataFrame}
import org.apache.spark.sql.dlbridge.SqlShims
import org.apache.spark.sql.execution.python.UserDefinedPythonFunction
import org.apache.spark.sql.execution.python.dlbridge.ProjectedArrowEvalPython
import org.apache.spark.sql.functions.udf

/**
 * Appends the column of a Python (Arrow) UDF so that it runs whatever the DataFrame's source is:
 * in-memory data, Parquet/ORC files, a cache, or a Structured Streaming file source.
 *
 * Spark 4.3 evaluates an Arrow UDF on columnar batches when its input comes straight from a
 * columnar scan (`spark.sql.execution.arrow.pythonUDF.columnarInput.enabled`, on by default). Two
 * cases take Spark's row path instead, through a filter that keeps every row (an always-true
 * condition from a non-deterministic Scala UDF, which Catalyst can neither fold nor remove), so
 * that a row-based operator sits between the scan and the UDF:
 *  - the DataFrame holds a user-defined-type column, such as an ML `Vector` features column: the
 *    columnar path fails on it even when it merely passes through
 *    (`[UNSUPPORTED_DATATYPE] Unsupported data type UDT(...)`);
 *  - an argument is computed (the Keras stages' packed features), not a column as it is: the
 *    columnar path then evaluates the arguments row by row anyway and turns its output rows back
 *    into batches, which Spark turns into rows again. `KerasModel.transform` on a Parquet
 *    `array<float>` source made 62,741 rows/s that way against 92,411 through this filter and
 *    91,037 on the row path without it (medians of 5 rotated passes, 2026-12-03; BENCHMARKS.md).
 * Otherwise the UDF is applied directly and keeps the columnar path. Either way the UDF's arguments
 * are computed in its own input projection, not stored as extra columns of the rows Spark keeps to
 * join the UDF's output back (an earlier guard, a projection per argument, did store them: 14% more
 * rows/s for `KerasModel.transform` on 784-value Vectors without it, in one run). The cost of the
 * guard: filters written after `transform` are not pushed below it into the scan; filter before
 * `transform` to keep them. On the row path the session plans the UDF with
 * [[ProjectedArrowEvalPython]] (installed here), which copies each row fewer times than Spark's
 * operator.
 */
private[ml] object PythonUdfColumns {

  /** Always true, but non-deterministic: a projection using it is kept as its own operator. */
  private val rowPathGuard = udf(() => true).asNondeterministic()

  /** `df` with `name` = `udf(inputs...)` appended, every existing column kept. */
  def withUdfColumn(df: DataFrame, name: String, udf: UserDefinedPythonFunction, inputs: Seq[Column]): DataFrame = {
    ProjectedArrowEvalPython.install(df.sparkSession)
    if (df.schema.fields.exists(f => ProjectedArrowEvalPython.holdsUdt(f.dataType)) ||
        !inputs.forall(SqlShims.isColumnReference))
      df.filter(rowPathGuard()).withColumn(name, udf(inputs: _*))
    else df.withColumn(name, udf(inputs: _*))
  }
}
