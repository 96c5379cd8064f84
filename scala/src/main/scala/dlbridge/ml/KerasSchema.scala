package dlbridge.ml

import java.nio.{ByteBuffer, ByteOrder}

import org.apache.spark.ml.attribute.AttributeGroup
import org.apache.spark.ml.linalg.{DenseVector, SparseVector, Vector}
import org.apache.spark.ml.linalg.SQLDataTypes.VectorType
import org.apache.spark.sql.Column
import org.apache.spark.sql.functions.{col, udf}
import org.apache.spark.sql.types._

/** Schema checks and column conversions of the Keras stages, done on the driver before any job. */
private[ml] object KerasSchema {

  private val fix = "Fix: assemble numeric columns into one vector with VectorAssembler, or pass array<float>."

  /** Checks the features column: an ML Vector or array<float|double>; returns its known size, if any. */
  def checkFeatures(schema: StructType, name: String, uid: String): Option[Int] = {
    require(schema.fieldNames.contains(name), s"$uid: featuresCol '$name' not found; " +
      s"the DataFrame has columns: ${schema.fieldNames.mkString(", ")}.")
    val field = schema(name)
    field.dataType match {
      case VectorType => Option(AttributeGroup.fromStructField(field).size).filter(_ >= 0)
      case ArrayType(FloatType | DoubleType, _) => None
      case other => throw new IllegalArgumentException(
        s"$uid: featuresCol '$name' must be an ML Vector or array<float|double>; received ${other.catalogString}. $fix")
    }
  }

  /** Checks the label column for training: numeric (class index or value), array or Vector. */
  def checkLabel(schema: StructType, name: String, uid: String): Unit = {
    require(schema.fieldNames.contains(name), s"$uid: labelCol '$name' not found; " +
      s"the DataFrame has columns: ${schema.fieldNames.mkString(", ")}.")
    schema(name).dataType match {
      case _: NumericType | ArrayType(_: NumericType, _) | VectorType =>
      case other => throw new IllegalArgumentException(
        s"$uid: labelCol '$name' must be numeric (class index or value), array<numeric> (one-hot) or a Vector; " +
          s"received ${other.catalogString}. Fix: index string labels with StringIndexer.")
    }
  }

  /**
   * The features as the Python UDF takes them: an ML Vector becomes one binary value of packed
   * little-endian float32 per row (a single copy per row, where `vector_to_array` builds a boxed
   * array element by element and caps throughput); arrays are cast to array<float>.
   */
  def featuresForPython(schema: StructType, name: String): Column = schema(name).dataType match {
    case VectorType => packFloat32(col(name))
    case _ => col(name).cast(ArrayType(FloatType, containsNull = false))
  }

  private val packFloat32 = udf { (vector: Vector) =>
    val buffer = ByteBuffer.allocate(4 * vector.size).order(ByteOrder.LITTLE_ENDIAN)
    vector match {
      case dense: DenseVector =>
        val values = dense.values
        var i = 0
        while (i < values.length) { buffer.putFloat(values(i).toFloat); i += 1 }
      case sparse: SparseVector =>
        var k = 0
        while (k < sparse.indices.length) { buffer.putFloat(4 * sparse.indices(k), sparse.values(k).toFloat); k += 1 }
    }
    buffer.array()
  }

  /** Checks the column names the stage will add are free. */
  def checkOutputsFree(schema: StructType, outputs: Seq[(String, String)], uid: String): Unit =
    outputs.foreach { case (param, name) =>
      require(!schema.fieldNames.contains(name),
        s"$uid: $param '$name' already exists in the DataFrame; choose another name (or drop the column).")
    }
}
