package dlbridge.ml

import java.nio.{ByteBuffer, ByteOrder}

import org.apache.spark.ml.attribute.AttributeGroup
import org.apache.spark.ml.linalg.{DenseVector, SparseVector, Vector}
import org.apache.spark.ml.linalg.SQLDataTypes.VectorType
import org.apache.spark.sql.Column
import org.apache.spark.sql.functions.{array, arrays_overlap, coalesce, col, lit, not, udf, when}
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
   * The features as the Python UDF takes them: one binary value per row of packed little-endian
   * float32 (a single copy per row, where `vector_to_array` builds a boxed array element by
   * element and caps throughput), for ML Vectors and for array<float|double> (nullable elements
   * included) alike. Invalid rows (null, or holding a null element, NaN or +/-inf once converted
   * to float32) become null; [[invalidReason]] says why.
   */
  def packedFeatures(schema: StructType, name: String): Column = schema(name).dataType match {
    case VectorType => packVector(col(name))
    case _ => when(coalesce(not(arrays_overlap(asFloats(name), nonFinite)), lit(false)), packArray(asFloats(name)))
  }

  /** What made a row's features invalid, in words; meant for rows [[packedFeatures]] made null. */
  def invalidReason(schema: StructType, name: String): Column = schema(name).dataType match {
    case VectorType => when(col(name).isNull, lit("a null vector")).otherwise(lit("a NaN or infinite value"))
    case _ => when(col(name).isNull, lit("a null array"))
      .when(arrays_overlap(asFloats(name), nonFinite), lit("a NaN or infinite value (as float32)"))
      .otherwise(lit("a null element"))
  }

  private def asFloats(name: String): Column = col(name).cast(ArrayType(FloatType, containsNull = true))

  private def nonFinite: Column = array(lit(Float.NaN), lit(Float.PositiveInfinity), lit(Float.NegativeInfinity))

  private val packArray = udf { (values: Array[Float]) =>
    val buffer = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN)
    buffer.asFloatBuffer().put(values)
    buffer.array()
  }

  private val packVector = udf { (vector: Vector) =>
    vector match {
      case null => null
      case dense: DenseVector => packDoubles(dense.values, null, dense.size)
      case sparse: SparseVector => packDoubles(sparse.values, sparse.indices, sparse.size)
    }
  }

  /** `values` (at `indices`, or all positions when null) as `size` float32; null if one is not finite. */
  private def packDoubles(values: Array[Double], indices: Array[Int], size: Int): Array[Byte] = {
    val buffer = ByteBuffer.allocate(4 * size).order(ByteOrder.LITTLE_ENDIAN)
    var k = 0
    while (k < values.length) {
      val f = values(k).toFloat
      if (!java.lang.Float.isFinite(f)) return null
      buffer.putFloat(4 * (if (indices == null) k else indices(k)), f)
      k += 1
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
