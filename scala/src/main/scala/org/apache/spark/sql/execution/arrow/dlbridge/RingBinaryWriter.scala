package org.apache.spark.sql.execution.arrow.dlbridge

import org.apache.arrow.vector.VarBinaryVector

import org.apache.spark.sql.catalyst.expressions.SpecializedGetters
import org.apache.spark.sql.execution.arrow.dlbridge.BatchArrowWriter.UnzeroedBinaryWriter
import org.apache.spark.sql.execution.python.dlbridge.{FeatureRing, FeatureRingTransport}

/**
 * The Arrow writer of the packed features column when a [[FeatureRingTransport]] is in use: each
 * batch's rows go into a slot of the ring, and the batch carries the header in its first value and
 * empty values after it. A batch goes in the Arrow batch itself, as [[UnzeroedBinaryWriter]] writes
 * it, when there is no ring, or when a row is null or of another length than the ring's (rows
 * already in the slot are then copied into the batch): Python then reports such rows as it always
 * does.
 */
private[sql] final class RingBinaryWriter(vector: VarBinaryVector, transport: FeatureRingTransport)
  extends UnzeroedBinaryWriter(vector) {

  private[this] var ring: FeatureRing = _
  private[this] var slot = -1 // the current batch's slot; -1 while the batch holds its own rows

  override def setValue(input: SpecializedGetters, ordinal: Int): Unit = {
    val bytes = input.getBinary(ordinal)
    if (count == 0) startBatch(bytes.length)
    if (slot >= 0 && bytes.length != ring.rowBytes) moveIntoBatch()
    if (slot >= 0) {
      ring.write(slot, count, bytes)
      if (count > 0) vector.setSafe(count, RingBinaryWriter.Empty, 0, 0)
    } else {
      super.setValue(input, ordinal)
    }
  }

  override def setNull(): Unit = {
    if (slot >= 0) moveIntoBatch()
    super.setNull()
  }

  override def finish(): Unit = {
    super.finish()
    transport.sentBatch(slot, count)
  }

  override def reset(): Unit = {
    super.reset()
    slot = -1
  }

  /** Takes a slot for the batch when a ring exists for rows of this length, and writes the header. */
  private def startBatch(rowBytes: Int): Unit = {
    transport.ringFor(rowBytes).filter(_.rowBytes == rowBytes).foreach { r =>
      ring = r
      slot = transport.acquire(r)
      val header = r.header(slot)
      vector.setSafe(0, header, 0, header.length)
    }
  }

  /** Copies the rows written to the slot so far into the batch, and gives the slot back. */
  private def moveIntoBatch(): Unit = {
    val rows = count
    super.reset()
    count = 0
    val row = new Array[Byte](ring.rowBytes)
    (0 until rows).foreach { i =>
      ring.read(slot, i, row)
      vector.setSafe(i, row, 0, row.length)
    }
    count = rows
    ring.unused(slot)
    slot = -1
  }
}

private object RingBinaryWriter {
  private val Empty = new Array[Byte](0)
}
