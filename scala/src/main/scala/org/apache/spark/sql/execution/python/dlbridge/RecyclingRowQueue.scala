package org.apache.spark.sql.execution.python.dlbridge

import java.io.File

import org.apache.spark.memory.{MemoryConsumer, TaskMemoryManager}
import org.apache.spark.serializer.SerializerManager
import org.apache.spark.sql.execution.python.{HybridRowQueue, InMemoryRowQueue, RowQueue}
import org.apache.spark.unsafe.memory.MemoryBlock

/**
 * Spark's queue of a Python UDF's input rows ([[HybridRowQueue]]: in-memory pages, spilled to disk
 * when other consumers need the memory), which reuses its pages instead of freeing each one once
 * read and allocating a fresh one for the next rows.
 *
 * Rows are only in the queue while their UDF results are on the way, so a task needs one or two
 * pages at a time, but Spark's queue allocates a new page (by default up to 64 MiB) every time one
 * fills up. On the heap that is a zeroed array large enough for G1 to treat it as a humongous
 * object, and every humongous allocation can start a concurrent marking cycle: with 6.3 KB rows
 * (784-value Vectors), 1,000,000 rows allocated about 100 such pages, and marking took about 6% of
 * the machine's CPU. Here a page the reader has finished with is kept as the spare (one at most)
 * and the next page the writer needs is the spare, when it is large enough.
 *
 * The spare counts as this consumer's memory until it is reused or freed. It is freed when the
 * queue spills (so a spill releases it along with the pages written to disk) and when the queue
 * closes. The reader thread hands a page over and the writer thread takes it under the same lock,
 * so every read of a page's old rows happens before any write of its new ones.
 *
 * @param memoryManager the task's memory manager, which the pages are allocated from
 * @param tempDir       where rows are written when the queue spills
 * @param numFields     the number of fields of each row
 * @param lockFree      whether one thread adds while another removes without locking each call
 *                      (Spark's pipelined Python UDF execution), as in [[HybridRowQueue]]
 */
private[dlbridge] class RecyclingRowQueue(
    memoryManager: TaskMemoryManager,
    tempDir: File,
    numFields: Int,
    serializerManager: SerializerManager,
    lockFree: Boolean)
  extends HybridRowQueue(memoryManager, tempDir, numFields, serializerManager, lockFree) {

  private[this] val lock = new Object
  private[this] var spare: MemoryBlock = _ // guarded by lock
  private[this] var spilling = false // guarded by lock
  private[this] var closed = false // guarded by lock

  override protected def allocatePage(required: Long): MemoryBlock = {
    val reused = lock.synchronized {
      val page = spare
      if (page != null && page.size >= required) { spare = null; page } else null
    }
    if (reused != null) reused else super.allocatePage(required)
  }

  override def createInMemoryQueue(page: MemoryBlock): RowQueue =
    new InMemoryRowQueue(page, numFields, lockFree) {
      override def close(): Unit = recycle(page)
    }

  /** Keeps `page` as the spare, or frees it: if there is a spare, or while spilling, or once closed. */
  private def recycle(page: MemoryBlock): Unit = {
    val surplus = lock.synchronized {
      if (spilling || closed || spare != null) page else { spare = page; null }
    }
    if (surplus != null) freePage(surplus)
  }

  /** Frees the spare page, if any; returns the bytes freed. */
  private def freeSpare(): Long = {
    val page = lock.synchronized { val p = spare; spare = null; p }
    if (page == null) 0L else { val size = page.size; freePage(page); size }
  }

  /** Frees the spare, then spills as Spark's queue does, freeing (not keeping) the pages written. */
  override def spill(size: Long, trigger: MemoryConsumer): Long = {
    lock.synchronized { spilling = true }
    try freeSpare() + super.spill(size, trigger)
    finally lock.synchronized { spilling = false }
  }

  override def close(): Unit = {
    lock.synchronized { closed = true }
    try super.close() finally freeSpare()
  }
}
