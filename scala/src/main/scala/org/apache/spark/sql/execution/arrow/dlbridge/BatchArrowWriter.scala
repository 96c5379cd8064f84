package org.apache.spark.sql.execution.arrow.dlbridge

import scala.jdk.CollectionConverters._

import org.apache.arrow.vector.{FieldVector, VarBinaryVector, VectorSchemaRoot}

import org.apache.spark.sql.execution.arrow.{ArrowFieldWriter, ArrowWriter, BinaryWriter}

/**
 * Spark's `ArrowWriter` for batches that are written, sent and reset over and over (the input
 * batches of an Arrow UDF), with one difference: a `binary` column's value bytes are not zeroed
 * when the batch is reset.
 *
 * Arrow's `reset` zeroes the whole value buffer of a variable-width vector, whose capacity has grown
 * to the largest batch so far: for 1,024 rows of 784 packed float32 features (3,136 bytes a row), 4
 * MiB of memory set to zero for every batch sent, more than the 3.2 MB the batch holds. Those bytes are
 * never read: each value written overwrites its bytes, a null has none, and only the bytes up to the
 * last offset are sent. The validity bits and offsets are still zeroed, as Arrow does. (With
 * `spark.sql.execution.arrow.useLargeVarTypes`, binary columns are `LargeVarBinaryVector`s, which
 * Spark's own field writer writes and resets.)
 */
object BatchArrowWriter {

  /**
   * A writer of `root`'s vectors, as `ArrowWriter.create(root)` builds one, with its binary columns'
   * resets lighter; `writerFor` may supply the writer of a column, given its index and vector.
   */
  def create(root: VectorSchemaRoot,
      writerFor: PartialFunction[(Int, FieldVector), ArrowFieldWriter] = PartialFunction.empty): ArrowWriter = {
    val fields = root.getFieldVectors.asScala.zipWithIndex.map { case (vector, index) =>
      vector.allocateNew()
      writerFor.applyOrElse((index, vector), (_: (Int, FieldVector)) => vector match {
        case binary: VarBinaryVector => new UnzeroedBinaryWriter(binary)
        case other => ArrowWriter.createFieldWriter(other)
      })
    }
    new ArrowWriter(root, fields.toArray)
  }

  /** Spark's `BinaryWriter`, whose reset leaves the value bytes as they are (see [[BatchArrowWriter]]). */
  class UnzeroedBinaryWriter(vector: VarBinaryVector) extends BinaryWriter(vector) {
    override def reset(): Unit = {
      vector.getValidityBuffer.setZero(0, vector.getValidityBuffer.capacity())
      vector.getOffsetBuffer.setZero(0, vector.getOffsetBuffer.capacity())
      vector.setValueCount(0) // no values, and none set (lastSet -1), as Arrow's reset leaves the vector
      count = 0
    }
  }
}
