package dlbridge.ml

import java.nio.{ByteBuffer, ByteOrder}

import org.apache.spark.ml.linalg.{SQLDataTypes, Vector, Vectors}
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.{UnsafeArrayData, UnsafeProjection}
import org.apache.spark.sql.catalyst.util.ArrayData
import org.apache.spark.sql.types.{ArrayType, DataType, DoubleType, FloatType, UserDefinedType}
import org.scalatest.funsuite.AnyFunSuite

/**
 * The packing of doubles to float32 from both kinds of memory Spark's arrays live in: an UnsafeRow's
 * byte array, and the `long[]` of `UnsafeArrayData.fromPrimitiveArray` (as `VectorUDT.serialize`
 * makes). Each must give Java's `(float)` cast of every value, bit for bit, and null when any value is
 * NaN or infinite as a float32 (a double beyond float32's range included).
 */
class PackedFloat32Suite extends AnyFunSuite {

  private val vectorUdt = SQLDataTypes.VectorType.asInstanceOf[UserDefinedType[Vector]]

  /** Java's cast of each value as little-endian float32, or None when one is not finite as a float. */
  private def expected(values: Array[Double]): Option[Seq[Byte]] = {
    val floats = values.map(_.toFloat)
    if (!floats.forall(java.lang.Float.isFinite)) None
    else {
      val buffer = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN)
      floats.foreach(buffer.putFloat)
      Some(buffer.array().toSeq)
    }
  }

  /** `value` of `dataType` as a field of an UnsafeRow, which keeps it in a byte array. */
  private def inUnsafeRow(value: Any, dataType: DataType): InternalRow =
    UnsafeProjection.create(Array(dataType)).apply(InternalRow(value))

  private def packedBothWays(values: Array[Double]): Seq[Option[Seq[Byte]]] = {
    val serialized = vectorUdt.serialize(Vectors.dense(values)).asInstanceOf[InternalRow] // in a long[]
    val fromRow = inUnsafeRow(serialized, SQLDataTypes.VectorType).getStruct(0, 4) // in a byte[]
    val array = inUnsafeRow(UnsafeArrayData.fromPrimitiveArray(values), ArrayType(DoubleType, containsNull = false))
    Seq(PackedFloat32.packVector(serialized), PackedFloat32.packVector(fromRow),
      PackedFloat32.packDoubles(array.getArray(0)), PackedFloat32.packNullableDoubles(array.getArray(0)))
      .map(Option(_).map(_.toSeq))
  }

  test("every length and edge value packs as Java's cast, from both kinds of memory") {
    val rng = new scala.util.Random(7)
    val edges = Array(0.0, -0.0, Double.MinPositiveValue, -1e-300, 1e-40, Float.MinPositiveValue.toDouble,
      Float.MaxValue.toDouble, -Float.MaxValue.toDouble, 3.4028235e38, 1.0 / 3, -2.5, 1e30)
    for (n <- Seq(0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 64, 783, 784, 785)) {
      val values = Array.tabulate(n)(i => if (i % 5 == 0) edges(i / 5 % edges.length) else rng.nextGaussian() * 100)
      val results = packedBothWays(values)
      results.zipWithIndex.foreach { case (got, way) => assert(got == expected(values), s"n=$n, way $way") }
      assert(expected(values).isDefined, s"n=$n: the edges above are all finite as float32")
    }
  }

  test("a NaN, an infinity or a double beyond float32's range anywhere makes the value invalid (null)") {
    for (n <- Seq(1, 8, 9, 784, 785); position <- Seq(0, n / 2, n - 1);
         bad <- Seq(Double.NaN, Double.PositiveInfinity, Double.NegativeInfinity, 1e39, -1e300)) {
      val values = Array.tabulate(n)(i => if (i == position) bad else i * 0.5)
      assert(packedBothWays(values).forall(_.isEmpty), s"n=$n, $bad at $position")
    }
  }

  test("a sparse Vector packs as its dense values; a null element of a nullable array makes it invalid") {
    val sparse = Vectors.sparse(6, Array(1, 4), Array(2.5, -1e-3))
    val packed = PackedFloat32.packVector(inUnsafeRow(vectorUdt.serialize(sparse), SQLDataTypes.VectorType).getStruct(0, 4))
    assert(packed.toSeq == expected(sparse.toArray).get)
    assert(PackedFloat32.packVector(vectorUdt.serialize(Vectors.sparse(3, Array(2), Array(Double.NaN)))
      .asInstanceOf[InternalRow]) == null)
    val withNull = inUnsafeRow(ArrayData.toArrayData(Array[Any](1.0f, null, 3.0f)), ArrayType(FloatType, containsNull = true))
    assert(PackedFloat32.packNullableFloats(withNull.getArray(0)) == null)
    val floats = inUnsafeRow(ArrayData.toArrayData(Array(1.0f, -0.0f, 3.5f)), ArrayType(FloatType, containsNull = false))
    assert(PackedFloat32.packFloats(floats.getArray(0)).toSeq == expected(Array(1.0, -0.0, 3.5)).get)
  }
}
