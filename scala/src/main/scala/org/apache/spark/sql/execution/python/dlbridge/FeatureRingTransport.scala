package org.apache.spark.sql.execution.python.dlbridge

import java.util.concurrent.ConcurrentLinkedQueue

import org.apache.spark.TaskContext

/**
 * One task's use of a [[FeatureRing]]: the ring, made when the first row shows its length, and the
 * record of the batches sent and not yet answered, which says when a slot is free again.
 *
 * The writer (`RingBinaryWriter`, on the runner's writer thread) records every batch it sends,
 * in order, and whether a slot holds its rows; the task's thread reports the rows of each result
 * batch it reads ([[answered]]). Python answers the batches in order, so once the results of a
 * batch's last row are read, its slot is free.
 *
 * @param maxRows   rows a batch holds at most (`spark.sql.execution.arrow.maxRecordsPerBatch`)
 * @param padding   bytes a batch's header is padded to: the runner's buffer size, so that each batch is
 *                  sent as soon as it is written
 */
private[sql] final class FeatureRingTransport(maxRows: Int, padding: Int, context: TaskContext) {

  private[this] var ring: Option[FeatureRing] = None
  private[this] var ringTried = false
  private[this] val sent = new ConcurrentLinkedQueue[FeatureRingTransport.Sent]()
  private[this] var answeredRows = 0L // of the batch at the head of `sent`; the task's thread only

  context.addTaskCompletionListener[Unit](_ => close())

  /** The ring for rows of `rowBytes` bytes: made at the first call, None if it cannot be. */
  def ringFor(rowBytes: Int): Option[FeatureRing] = synchronized {
    if (!ringTried) {
      ringTried = true
      ring = FeatureRing.create(rowBytes, maxRows, padding)
    }
    ring
  }

  /** A free slot of `ring`, waiting for one while all are in use. */
  def acquire(ring: FeatureRing): Int = ring.acquire(context)

  /** Records a batch of `rows` rows just written, held in `slot` (-1: in the batch itself). */
  def sentBatch(slot: Int, rows: Int): Unit = sent.add(FeatureRingTransport.Sent(slot, rows))

  /** Records `rows` more rows of results read, and frees the slots of the batches they complete. */
  def answered(rows: Int): Unit = {
    answeredRows += rows
    var head = sent.peek()
    while (head != null && answeredRows >= head.rows) {
      answeredRows -= head.rows
      sent.poll()
      if (head.slot >= 0) ring.foreach(_.answered(head.slot))
      head = sent.peek()
    }
  }

  private def close(): Unit = synchronized {
    ring.foreach(_.close())
  }
}

private object FeatureRingTransport {
  private final case class Sent(slot: Int, rows: Int)
}
