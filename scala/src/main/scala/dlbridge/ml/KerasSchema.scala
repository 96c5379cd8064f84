package dlbridge.ml

import org.apache.spark.ml.attribute.AttributeGroup
import org.apache.spark.ml.linalg.SQLDataTypes.VectorType
import org.apache.spark.sql.Column
import org.apache.spark.sql.catalyst.analysis.UnresolvedAttribute
import org.apache.spark.sql.catalyst.expressions.{Cast, CreateArray, Expression}
import org.apache.spark.sql.dlbridge.SqlShims
import org.apache.spark.sql.functions.{array, arrays_overlap, coalesce, col, concat, isnan, lit, when}
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

  /**
   * Checks each of `featuresCols`: an ML Vector, an array of numbers or a number. Returns the number
   * of values per row when every column's is known (Vector size metadata, or 1 for a number).
   */
  def checkFeatureColumns(schema: StructType, names: Seq[String], uid: String): Option[Int] = {
    val sizes = names.map { name =>
      require(schema.fieldNames.contains(name), s"$uid: featuresCols column '$name' not found; " +
        s"the DataFrame has columns: ${schema.fieldNames.mkString(", ")}.")
      schema(name).dataType match {
        case VectorType => Option(AttributeGroup.fromStructField(schema(name)).size).filter(_ >= 0)
        case ArrayType(_: NumericType, _) => None
        case _: NumericType => Some(1)
        case other => throw new IllegalArgumentException(s"$uid: featuresCols column '$name' must be an ML " +
          s"Vector, an array of numbers or a number; received ${other.catalogString}. Fix: drop it from " +
          "featuresCols, or index/encode it first (e.g. StringIndexer, OneHotEncoder).")
      }
    }
    if (sizes.forall(_.isDefined)) Some(sizes.flatten.sum) else None
  }

  /** Checks the sample-weight column for training: a number. */
  def checkWeight(schema: StructType, name: String, uid: String): Unit = {
    require(schema.fieldNames.contains(name), s"$uid: weightCol '$name' not found; " +
      s"the DataFrame has columns: ${schema.fieldNames.mkString(", ")}. Fix: set weightCol to a numeric " +
      "column, or to empty for weights of 1.")
    require(schema(name).dataType.isInstanceOf[NumericType], s"$uid: weightCol '$name' must be numeric (one " +
      s"weight per row); received ${schema(name).dataType.catalogString}. Fix: cast it to double.")
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

  /**
   * Several feature columns (each a Vector, an array of numbers or a number, see
   * [[checkFeatureColumns]]) as one packed float32 row, concatenated in order; null when any
   * column's part is null (an invalid row, as for [[packedFeatures]]).
   */
  def packedFeatures(schema: StructType, names: Seq[String]): Column = concat(names.map(packedPart(schema, _)): _*)

  private def packedPart(schema: StructType, name: String): Column = {
    val attribute = UnresolvedAttribute.quotedString(name)
    val floats: Expression = schema(name).dataType match {
      case VectorType | ArrayType(FloatType | DoubleType, _) => attribute
      case ArrayType(_, _) => Cast(attribute, ArrayType(FloatType, containsNull = true))
      case _ => CreateArray(Seq(Cast(attribute, FloatType)))
    }
    SqlShims.column(PackedFloat32(floats))
  }

  /** What made a row of several feature columns invalid, naming the first invalid column. */
  def invalidReason(schema: StructType, names: Seq[String]): Column =
    coalesce(names.map(name => when(packedPart(schema, name).isNull,
      concat(lit(s"column '$name' holding "), invalidReason(schema, name)))): _*)

  /** What made a row's features invalid, in words; meant for rows [[packedFeatures]] made null. */
  def invalidReason(schema: StructType, name: String): Column = schema(name).dataType match {
    case VectorType => when(col(name).isNull, lit("a null vector")).otherwise(lit("a NaN or infinite value"))
    case _: NumericType => when(col(name).isNull, lit("a null value"))
      .when(isnan(col(name).cast(FloatType)), lit("a NaN value")).otherwise(lit("an infinite value (as float32)"))
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
