package org.apache.spark.sql.execution.python.dlbridge

import java.nio.{ByteBuffer, ByteOrder}
import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Paths}
import java.nio.file.attribute.PosixFilePermissions

import org.apache.arrow.memory.RootAllocator
import org.apache.arrow.vector.{VarBinaryVector, VectorSchemaRoot}
import org.apache.arrow.vector.types.pojo.{ArrowType, Field, Schema}

import org.apache.spark.TaskContext
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.execution.arrow.dlbridge.{BatchArrowWriter, RingBinaryWriter}
import org.scalatest.concurrent.{Signaler, ThreadSignaler, TimeLimits}
import org.scalatest.funsuite.AnyFunSuite
import org.scalatest.time.{Seconds, Span}

/**
 * [[FeatureRing]] through its writer, [[RingBinaryWriter]]: what a batch carries (the header and
 * empty values) and what its slot holds, a row of another length moving the batch back into the
 * batch itself, slots freed by the rows answered, and the file deleted at the first answer and
 * unmapped when the task ends.
 */
class FeatureRingSuite extends AnyFunSuite with TimeLimits {

  implicit val signaler: Signaler = ThreadSignaler

  private val schema = new Schema(java.util.List.of(Field.nullable("_0", ArrowType.Binary.INSTANCE)))
  private def row(bytes: Int, fill: Int): Array[Byte] = Array.tabulate(bytes)(i => (fill * 31 + i).toByte)

  /** The header's fields: file path, slot offset and bytes per row. */
  private def parse(header: Array[Byte]): (String, Long, Int) = {
    val in = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN)
    val magic = new Array[Byte](8)
    in.get(magic).position(24)
    assert(new String(magic, StandardCharsets.US_ASCII) == "DLBRING1")
    val (offset, rowBytes, length) = (in.getLong(), in.getInt(), in.getShort().toInt)
    val path = new Array[Byte](length)
    in.get(path)
    (new String(path, StandardCharsets.UTF_8), offset, rowBytes)
  }

  test("batches carry a header and empty values; the slots hold the rows until their results are read") {
    assume(Files.isWritable(FeatureRing.Directory), "/dev/shm is needed")
    val context = TaskContext.empty()
    val allocator = new RootAllocator(Long.MaxValue)
    val root = VectorSchemaRoot.create(schema, allocator)
    try {
      val transport = new FeatureRingTransport(maxRows = 4, padding = 1000, context)
      val writer = BatchArrowWriter.create(root, {
        case (0, binary: VarBinaryVector) => new RingBinaryWriter(binary, transport)
      })
      val vector = root.getVector(0).asInstanceOf[VarBinaryVector]
      def send(rows: Seq[Array[Byte]]): Seq[Array[Byte]] = {
        rows.foreach(r => writer.write(InternalRow(r)))
        writer.finish()
        val values = (0 until vector.getValueCount).map(i => vector.get(i))
        writer.reset()
        values
      }

      failAfter(Span(60, Seconds)) { // a slot never freed would block the writer
      val first = Seq.tabulate(3)(i => row(16, i))
      val sent = send(first)
      val (path, offset, rowBytes) = parse(sent.head)
      assert(sent.head.length >= 1000 && sent.head.length % 4 == 2)
      assert(sent.tail.forall(_.isEmpty) && rowBytes == 16)
      val file = Paths.get(path)
      val onDisk = Files.readAllBytes(file)
      assert(PosixFilePermissions.toString(Files.getPosixFilePermissions(file)) == "rw-------")
      first.zipWithIndex.foreach { case (r, i) =>
        assert(onDisk.slice((offset + 16 * i).toInt, (offset + 16 * (i + 1)).toInt).sameElements(r))
      }

      // a row of another length: the batch holds its rows itself, and its slot is not kept
      val mixed = Seq(row(16, 7), row(16, 8), row(12, 9))
      val inline = send(mixed)
      assert(inline.zip(mixed).forall { case (a, b) => a.sameElements(b) })

      val offsets = (1 to 3).map(i => parse(send(Seq(row(16, 10 + i))).head)._2)
      assert((offset +: offsets).distinct.size == 4, "4 batches in flight take the 4 slots")
      assert(Files.exists(file))
      transport.answered(2) // not yet all of the first batch
      assert(Files.exists(file))
      transport.answered(1 + 3) // the first batch and the one held inline
      assert(!Files.exists(file), "the file is deleted once its first batch is answered")
      assert(parse(send(Seq(row(16, 20))).head)._2 == offset, "the first batch's slot is free again")
      }
    } finally {
      context.asInstanceOf[org.apache.spark.TaskContextImpl].markTaskCompleted(None)
      root.close()
      allocator.close()
    }
    val mine = s"${FeatureRing.FilePrefix}${ProcessHandle.current().pid()}-"
    val left = Files.list(FeatureRing.Directory)
    try assert(left.noneMatch(_.getFileName.toString.startsWith(mine)), "the task's end deletes the file")
    finally left.close()
  }
}
