package dlbridge.ml

import org.apache.spark.ml.attribute.AttributeGroup
import org.apache.spark.ml.linalg.SQLDataTypes.VectorType
import org.apache.spark.sql.Column
import org.apache.spark.sql.catalyst.analysis.UnresolvedAttribute
import org.apache.spark.sql.dlbridge.SqlShims
import org.apache.spark.sql.functions.{array, arrays_overlap, col, lit, when}
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
   * float32 (see [[PackedFloat32]]), for ML Vectors and array<float|double> (nullable elements
   * included) alike. Invalid rows (null, or holding a null element, NaN or +/-inf once converted
   * to float32) become null; [[invalidReason]] says why.
   */
  def packedFeatures(name: String): Column =
    SqlShims.column(PackedFloat32(UnresolvedAttribute.quotedString(name)))

  /** What made a row's features invalid, in words; meant for rows [[packedFeatures]] made null. */
  def invalidReason(schema: StructType, name: String): Column = schema(name).dataType match {
    case VectorType => when(col(name).isNull, lit("a null vector")).otherwise(lit("a NaN or infinite value"))
    case _ => when(col(name).isNull, lit("a null array"))
      .when(arrays_overlap(asFloats(name), nonFinite), lit("a NaN or infinite value (as float32)"))
      .otherwise(lit("a null element"))
  }

  private def asFloats(name: String): Column = col(name).cast(ArrayType(FloatType, containsNull = true))

  private def nonFinite: Column = array(lit(Float.NaN), lit(Float.PositiveInfinity), lit(Float.NegativeInfinity))

  /** Checks the column names the stage will add are free. */
  def checkOutputsFree(schema: StructType, outputs: Seq[(String, String)], uid: String): Unit =
    outputs.foreach { case (param, name) =>
      require(!schema.fieldNames.contains(name),
        s"$uid: $param '$name' already exists in the DataFrame; choose another name (or drop the column).")
    }
}
