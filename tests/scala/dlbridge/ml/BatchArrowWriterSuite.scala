package dlbridge.ml

import java.io.ByteArrayOutputStream

import org.apache.arrow.memory.RootAllocator
import org.apache.arrow.vector.{VarBinaryVector, VectorSchemaRoot}
import org.apache.arrow.vector.ipc.ArrowStreamWriter
import org.apache.arrow.vector.types.pojo.{ArrowType, Field, Schema}

import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.execution.arrow.ArrowWriter
import org.apache.spark.sql.execution.arrow.dlbridge.BatchArrowWriter
import org.scalatest.funsuite.AnyFunSuite

/**
 * [[BatchArrowWriter]], the writer of dlbridge's UDF input batches: batch after batch (long values,
 * then shorter ones, nulls and empty values), the Arrow stream it writes holds exactly the bytes
 * Spark's `ArrowWriter` writes, although its resets leave earlier values' bytes in the buffer.
 */
class BatchArrowWriterSuite extends AnyFunSuite {

  /** A UDF's arguments as Spark sends them: `_0 binary, _1 int`. */
  private val schema = new Schema(java.util.List.of(
    Field.nullable("_0", ArrowType.Binary.INSTANCE), Field.nullable("_1", new ArrowType.Int(32, true))))

  /** Batches of rows (binary value or null, int), each unlike the one before. */
  private val batches: Seq[Seq[(Array[Byte], Int)]] = Seq(
    (0 until 50).map(i => (Array.fill(300 + i)((i + 1).toByte), i)),
    (0 until 20).map(i => (if (i % 3 == 0) null else Array.fill(i % 5)((i + 7).toByte), -i)),
    Seq.empty,
    (0 until 70).map(i => (if (i == 69) null else Array.tabulate(40)(j => (i * j).toByte), i * 2)))

  /** The Arrow stream `create` writes for [[batches]] (each written, sent and reset, as a UDF's runner does). */
  private def stream(create: VectorSchemaRoot => ArrowWriter, onReset: VectorSchemaRoot => Unit = _ => ()): Array[Byte] = {
    val allocator = new RootAllocator(Long.MaxValue)
    val root = VectorSchemaRoot.create(schema, allocator)
    try {
      val out = new ByteArrayOutputStream()
      val writer = create(root)
      val arrow = new ArrowStreamWriter(root, null, out)
      arrow.start()
      for (batch <- batches) {
        batch.foreach { case (bytes, n) => writer.write(InternalRow(bytes, n)) }
        writer.finish()
        arrow.writeBatch()
        writer.reset()
        onReset(root)
      }
      arrow.end()
      out.toByteArray
    } finally {
      root.close()
      allocator.close()
    }
  }

  test("batch after batch, the stream holds the bytes Spark's ArrowWriter writes") {
    val sparks = stream(ArrowWriter.create)
    var leftOver = 0 // bytes of an earlier batch still in the value buffer after a reset
    val ours = stream(BatchArrowWriter.create(_), root => {
      val binary = root.getVector(0).asInstanceOf[VarBinaryVector]
      assert(binary.getValueCount == 0 && binary.getLastSet == -1)
      assert(binary.getOffsetBuffer.getInt(0) == 0 && binary.getValidityBuffer.getByte(0) == 0)
      if (binary.getDataBuffer.getByte(0) != 0) leftOver += 1
    })
    assert(leftOver > 0, "the value buffer was zeroed: BatchArrowWriter's binary reset was not used")
    assert(ours.length == sparks.length && ours.sameElements(sparks))
  }
}
