package org.apache.spark.sql.execution.python.dlbridge

import java.util.IdentityHashMap

import dlbridge.TempDirectories

import org.apache.spark.SparkConf
import org.apache.spark.memory.{MemoryConsumer, MemoryMode, TaskMemoryManager, UnifiedMemoryManager}
import org.apache.spark.serializer.{JavaSerializer, SerializerManager}
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.{UnsafeProjection, UnsafeRow}
import org.apache.spark.sql.execution.python.HybridRowQueue
import org.apache.spark.sql.types.{BinaryType, LongType, StructType}
import org.scalatest.funsuite.AnyFunSuite

/**
 * [[RecyclingRowQueue]] against a real task memory manager with 4 KiB pages: rows come out in order
 * whatever the pages, the pages are reused (Spark's own queue allocates a new one each time), a spill
 * frees the spare page with the pages it writes to disk, and closing frees everything.
 */
class RecyclingRowQueueSuite extends AnyFunSuite with TempDirectories {

  private val PageSize = 4096L
  private val conf = new SparkConf(false).set("spark.buffer.pageSize", PageSize.toString)
  private val schema = new StructType().add("id", LongType).add("payload", BinaryType)

  private def taskMemory(): TaskMemoryManager =
    new TaskMemoryManager(new UnifiedMemoryManager(conf, 64L << 20, 32L << 20, 1), 0)

  private def queueOf(memory: TaskMemoryManager, lockFree: Boolean = false): RecyclingRowQueue =
    new RecyclingRowQueue(memory, tempDir("queue").toFile, 2, new SerializerManager(new JavaSerializer(conf), conf), lockFree)

  /** Row `i`: its id and 100-400 payload bytes that all equal `i % 127`. */
  private val project = UnsafeProjection.create(schema)
  private def row(i: Int): UnsafeRow =
    project(InternalRow(i.toLong, Array.fill[Byte](100 + (i * 37) % 300)((i % 127).toByte)))

  private def assertRow(r: UnsafeRow, i: Int): Unit = {
    assert(r.getLong(0) == i)
    val payload = r.getBinary(1)
    assert(payload.length == 100 + (i * 37) % 300 && payload.forall(_ == (i % 127).toByte), s"row $i")
  }

  /** Adds `rows` rows, removing each one `lag` rows later; returns the distinct page arrays read from. */
  private def stream(queue: HybridRowQueue, rows: Int, lag: Int, memory: TaskMemoryManager,
                     maxPages: Int): Int = {
    val pages = new IdentityHashMap[AnyRef, Unit]()
    var removed = 0
    for (i <- 0 until rows) {
      queue.add(row(i))
      if (i - removed >= lag) {
        val r = queue.remove()
        pages.put(r.getBaseObject, ())
        assertRow(r, removed)
        removed += 1
      }
      assert(memory.getMemoryConsumptionForThisTask <= maxPages * PageSize)
    }
    while (removed < rows) { assertRow(queue.remove(), removed); removed += 1 }
    pages.size
  }

  test("rows come out in order, from at most three pages that are reused, and closing frees them") {
    for (lockFree <- Seq(false, true)) {
      val memory = taskMemory()
      val queue = queueOf(memory, lockFree)
      // 3,000 rows of 100-400 bytes are ~190 pages of 4 KiB; 5 rows in flight span at most two pages,
      // and the third is the spare
      val pages = stream(queue, 3000, lag = 5, memory, maxPages = 3)
      assert(pages <= 3, s"$pages page arrays for 3,000 rows")
      queue.close()
      assert(queue.getUsed == 0 && memory.cleanUpAllAllocatedMemory() == 0)
    }
  }

  test("Spark's own queue allocates a page for every page of rows (what the recycling saves)") {
    val memory = taskMemory()
    val sparks = HybridRowQueue(memory, tempDir("spark").toFile, 2,
      new SerializerManager(new JavaSerializer(conf), conf), false)
    val pages = stream(sparks, 3000, lag = 5, memory, maxPages = 2)
    sparks.close()
    assert(pages > 100, s"$pages page arrays for 3,000 rows")
  }

  test("a spill triggered by another consumer writes the full pages to disk and frees them with the spare") {
    val memory = taskMemory()
    val queue = queueOf(memory)
    val other = new MemoryConsumer(memory, MemoryMode.ON_HEAP) {
      override def spill(size: Long, trigger: MemoryConsumer): Long = 0L
    }
    (0 until 40).foreach(i => queue.add(row(i)))
    (0 until 15).foreach(i => assertRow(queue.remove(), i)) // the first page is read: it becomes the spare
    (40 until 60).foreach(i => queue.add(row(i)))
    val before = queue.getUsed
    val released = queue.spill(Long.MaxValue, other)
    assert(released > 0 && queue.getUsed == before - released && queue.getUsed <= 2 * PageSize,
      s"used $before, released $released, left ${queue.getUsed}")
    (60 until 80).foreach(i => queue.add(row(i)))
    (15 until 80).foreach(i => assertRow(queue.remove(), i))
    assert(queue.spill(Long.MaxValue, queue) >= 0) // a spill the queue triggers itself moves no rows
    queue.close()
    assert(queue.getUsed == 0 && memory.cleanUpAllAllocatedMemory() == 0)
  }
}
