package dlbridge.ml

import org.apache.spark.sql.{Column, DataFrame}
import org.apache.spark.sql.execution.python.UserDefinedPythonFunction
import org.apache.spark.sql.functions.udf
import org.apache.spark.sql.types.{ArrayType, DataType, MapType, StructType, UserDefinedType}

/**
 * Appends the column of a Python (Arrow) UDF so that it runs whatever the DataFrame's source is:
 * in-memory data, Parquet/ORC files, a cache, or a Structured Streaming file source.
 *
 * Spark 4.3 evaluates an Arrow UDF on columnar batches when its input comes straight from a
 * columnar scan (`spark.sql.execution.arrow.pythonUDF.columnarInput.enabled`, on by default), and
 * that path fails on any user-defined-type column that merely passes through, such as an ML
 * `Vector` features column: `[UNSUPPORTED_DATATYPE] Unsupported data type UDT(...)`. When the
 * DataFrame holds such a column, its rows first pass a filter that keeps them all (an always-true
 * condition from a non-deterministic Scala UDF, which Catalyst can neither fold nor remove), so a
 * row-based operator sits between the scan and the UDF and Spark takes its row path, which handles
 * every column type. Without UDT columns the UDF is applied directly and keeps the columnar path.
 * Either way the UDF's arguments are computed in its own input projection, not stored as extra
 * columns of the rows Spark keeps to join the UDF's output back (an earlier guard, a projection
 * per argument, did store them: 14% more rows/s for `KerasModel.transform` on 784-value Vectors
 * without it, in one run). The cost of the guard: filters written after `transform` are not pushed below it
 * into the scan; filter before `transform` to keep them.
 */
private[ml] object PythonUdfColumns {

  /** Always true, but non-deterministic: a projection using it is kept as its own operator. */
  private val rowPathGuard = udf(() => true).asNondeterministic()

  /** `df` with `name` = `udf(inputs...)` appended, every existing column kept. */
  def withUdfColumn(df: DataFrame, name: String, udf: UserDefinedPythonFunction, inputs: Seq[Column]): DataFrame =
    if (!df.schema.fields.exists(f => holdsUdt(f.dataType))) df.withColumn(name, udf(inputs: _*))
    else df.filter(rowPathGuard()).withColumn(name, udf(inputs: _*))

  private def holdsUdt(dataType: DataType): Boolean = dataType match {
    case _: UserDefinedType[_] => true
    case s: StructType => s.fields.exists(f => holdsUdt(f.dataType))
    case a: ArrayType => holdsUdt(a.elementType)
    case m: MapType => holdsUdt(m.keyType) || holdsUdt(m.valueType)
    case _ => false
  }
}
