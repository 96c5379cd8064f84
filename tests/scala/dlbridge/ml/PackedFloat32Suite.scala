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
 * NaN or infinite as a float32 (a double beyond float32's range included), whether it writes into a
 * new array or into a reused one that holds an earlier row's bytes.
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

  /** An array of `length` bytes holding another row's bytes, to pack into. */
  private def used(length: Int): Array[Byte] = Array.fill(length)(0x5a.toByte)

  /** `values` packed from each kind of memory, each into a new array and into a used one. */
  private def packedBothWays(values: Array[Double]): Seq[Option[Seq[Byte]]] = {
    val serialized = vectorUdt.serialize(Vectors.dense(values)).asInstanceOf[InternalRow] // in a long[]
    val fromRow = inUnsafeRow(serialized, SQLDataTypes.VectorType).getStruct(0, 4) // in a byte[]
    val array = inUnsafeRow(UnsafeArrayData.fromPrimitiveArray(values), ArrayType(DoubleType, containsNull = false))
    Seq(null, used(4 * values.length)).flatMap { into =>
      Seq(PackedFloat32.packVector(serialized, into), PackedFloat32.packVector(fromRow, into),
        PackedFloat32.packDoubles(array.getArray(0), into), PackedFloat32.packNullableDoubles(array.getArray(0), into))
        .map(Option(_).map(_.toSeq))
    }
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
    val serialized = inUnsafeRow(vectorUdt.serialize(sparse), SQLDataTypes.VectorType).getStruct(0, 4)
    for (into <- Seq(null, used(24))) assert(PackedFloat32.packVector(serialized, into).toSeq == expected(sparse.toArray).get)
    assert(PackedFloat32.packVector(vectorUdt.serialize(Vectors.sparse(3, Array(2), Array(Double.NaN)))
      .asInstanceOf[InternalRow], null) == null)
    val withNull = inUnsafeRow(ArrayData.toArrayData(Array[Any](1.0f, null, 3.0f)), ArrayType(FloatType, containsNull = true))
    assert(PackedFloat32.packNullableFloats(withNull.getArray(0), null) == null)
    val floats = inUnsafeRow(ArrayData.toArrayData(Array(1.0f, -0.0f, 3.5f)), ArrayType(FloatType, containsNull = false))
    for (into <- Seq(null, used(12), used(16))) {
      assert(PackedFloat32.packFloats(floats.getArray(0), into).toSeq == expected(Array(1.0, -0.0, 3.5)).get)
    }
  }

  test("generated code reuses one array only when asked to (dlbridge's operator); otherwise each row gets its own") {
    val input = Seq(Array(1.0, 2.0), Array(-3.5, 4.25), Array(0.5, Double.NaN), Array(7.0, 8.0))
      .map(v => inUnsafeRow(vectorUdt.serialize(Vectors.dense(v)), SQLDataTypes.VectorType))
    val field = org.apache.spark.sql.catalyst.expressions.BoundReference(0, SQLDataTypes.VectorType, nullable = true)
    for (reuse <- Seq(false, true)) {
      val project = org.apache.spark.sql.catalyst.expressions.MutableProjection.create(Seq(
        if (reuse) PackedFloat32(field).withReusedBuffer else PackedFloat32(field)))
      val packed = input.map { row =>
        val value = project(row).getBinary(0)
        (value, Option(value).map(_.toSeq)) // the bytes as they are when the row is evaluated
      }
      assert(packed.map(_._2) == Seq(Array(1.0, 2.0), Array(-3.5, 4.25), Array(0.5, Double.NaN), Array(7.0, 8.0)).map(expected))
      val arrays = packed.flatMap(p => Option(p._1))
      val distinct = arrays.indices.count(i => arrays.indexWhere(_ eq arrays(i)) == i) // by reference
      assert(distinct == (if (reuse) 1 else 3), s"reuse=$reuse")
    }
  }
}
