package dlbridge.ml

import org.apache.spark.ml.linalg.SQLDataTypes.VectorType
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.{Expression, GenericInternalRow, UnaryExpression, UnsafeArrayData}
import org.apache.spark.sql.catalyst.expressions.codegen.{CodegenContext, ExprCode}
import org.apache.spark.sql.catalyst.util.ArrayData
import org.apache.spark.sql.types.DataType

/**
 * An `array<double>` (no null elements) as a dense ML Vector, built directly in the Vector's
 * serialized form (type 1 = dense, size and indices null, the values), as `VectorUDT.serialize`
 * writes a dense vector; null when the array is null.
 *
 * It replaces `array_to_vector` on the Keras stages' probability column: that function is a Scala
 * UDF, so every row's array is converted to a boxed `Seq[Double]`, then to a `DenseVector`, then
 * serialized again. Here the values are copied once, as primitive doubles.
 */
private[ml] case class DenseVectorOf(child: Expression) extends UnaryExpression {

  override def dataType: DataType = VectorType

  override def nullable: Boolean = child.nullable

  override protected def nullSafeEval(values: Any): Any = DenseVectorOf.dense(values.asInstanceOf[ArrayData])

  override protected def doGenCode(ctx: CodegenContext, ev: ExprCode): ExprCode = {
    val method = s"${classOf[DenseVectorOf].getName}.dense"
    defineCodeGen(ctx, ev, values => s"$method($values)")
  }

  override protected def withNewChildInternal(newChild: Expression): DenseVectorOf = copy(child = newChild)
}

/** The conversion, static so that generated code calls it directly. */
private[ml] object DenseVectorOf {

  /**
   * The serialized dense Vector of `values`, copied (the input may be a reused columnar buffer) as
   * primitive doubles. Not through `values.copy()`: on an Arrow column (the UDF's output) that first
   * asks the whole column whether it holds a null, counting the nulls of every value of the batch,
   * for every row (1.5% of all CPU in a profile of a 784-feature transform).
   */
  def dense(values: ArrayData): InternalRow =
    new GenericInternalRow(Array[Any](1.toByte, null, null, UnsafeArrayData.fromPrimitiveArray(values.toDoubleArray())))
}
