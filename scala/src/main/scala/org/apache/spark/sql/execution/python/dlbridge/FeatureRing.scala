package org.apache.spark.sql.execution.python.dlbridge

import java.io.{IOException, RandomAccessFile}
import java.nio.{ByteBuffer, ByteOrder, MappedByteBuffer}
import java.nio.channels.FileChannel
import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path, Paths}
import java.nio.file.attribute.PosixFilePermissions
import java.security.SecureRandom
import java.util.UUID
import java.util.concurrent.{ArrayBlockingQueue, TimeUnit}

import scala.util.control.NonFatal

import org.apache.spark.TaskContext
import org.apache.spark.internal.Logging
import org.apache.spark.sql.internal.SQLConf
import org.apache.spark.storage.StorageUtils

/**
 * Shared memory through which one task hands its packed float32 feature rows to its Python worker,
 * instead of sending them through the worker's socket: a file in `/dev/shm` (memory, not disk) that
 * both processes map. The Arrow batch still carries one value per row, but only its first row's
 * value has bytes: a header naming the file and the slot that holds the batch's rows
 * ([[FeatureRing.header]]); Python (`dlbridge.inference.feature_ring`) reads the rows in place and
 * hands them to TensorFlow without a copy. That saves, per row, the Arrow batch's copy, its
 * serialization, the socket's two copies, PySpark's read and the aligned copy Python makes for
 * TensorFlow: 3.1 KB each, for a 784-value row.
 *
 * The file holds a header page (a magic string and a random secret, which Python checks against the
 * batch's header before it reads anything) and `slots` slots of `maxRows * rowBytes` bytes. A slot is
 * taken by the writer for one batch ([[acquire]]) and given back once the task has read that batch's
 * results ([[answered]]): Python no longer reads a batch's rows once it has returned its results.
 * With every slot in use, the writer waits, which keeps at most `slots` batches between the JVM and
 * Python. The file is deleted once Python has answered its first batch (both processes keep their
 * mappings), or when the task ends ([[close]]). A file left by a JVM that was killed before either
 * is deleted by the first ring that a later JVM on the machine creates ([[FeatureRing.create]]).
 */
private[sql] final class FeatureRing private (
    file: Path,
    channel: FileChannel,
    memory: MappedByteBuffer,
    secret: Array[Byte],
    val slots: Int,
    val rowBytes: Int,
    slotBytes: Long,
    padding: Int) extends Logging {

  private[this] val free = new ArrayBlockingQueue[Integer](slots)
  (0 until slots).foreach(slot => free.add(slot))
  @volatile private[this] var fileDeleted = false
  @volatile private[this] var closed = false

  /** Byte offset of `slot` in the file. */
  private def slotOffset(slot: Int): Long = FeatureRing.HeaderPage + slot * slotBytes

  /**
   * A free slot, waiting while all are in use, until the task ends.
   * @throws org.apache.spark.TaskKilledException if the task is killed while it waits
   */
  def acquire(context: TaskContext): Int = {
    var slot = free.poll()
    while (slot == null) {
      context.killTaskIfInterrupted()
      if (context.isCompleted() || closed) throw new IllegalStateException("The task ended while its writer waited.")
      slot = free.poll(50, TimeUnit.MILLISECONDS)
    }
    slot
  }

  /**
   * Gives back a slot whose batch Python has answered. The first time, the file is deleted: Python
   * has mapped it, and both mappings outlive the name.
   */
  def answered(slot: Int): Unit = {
    free.add(slot)
    if (!fileDeleted) deleteFile()
  }

  /** Gives back a slot that a batch took and then did not use (it was sent in the batch itself). */
  def unused(slot: Int): Unit = free.add(slot)

  /**
   * Copies one row's packed values into `slot` at `row`. Writes and [[close]] exclude each other, so
   * that a task that ends while its writer thread still runs never has that thread write to memory
   * no longer mapped.
   */
  def write(slot: Int, row: Int, bytes: Array[Byte]): Unit = synchronized {
    if (closed) throw new IllegalStateException("The task ended while its writer wrote a batch.")
    memory.put(Math.toIntExact(slotOffset(slot) + row.toLong * rowBytes), bytes, 0, rowBytes)
  }

  /** Copies one row's packed values out of `slot` at `row` into `into`. */
  def read(slot: Int, row: Int, into: Array[Byte]): Unit = synchronized {
    if (closed) throw new IllegalStateException("The task ended while its writer wrote a batch.")
    memory.get(Math.toIntExact(slotOffset(slot) + row.toLong * rowBytes), into, 0, rowBytes)
  }

  /**
   * The first row's value of a batch held in `slot`, little-endian: the magic string (8 bytes), the
   * secret (16), the slot's byte offset (8), the bytes per row (4), the file's path length (2) and
   * its UTF-8 path; then zeros, to at least `padding` bytes and 2 more than a multiple of 4, a
   * length no packed row has (4 bytes a value). The padding makes each batch fill the runner's
   * buffer, which sends it at once.
   */
  def header(slot: Int): Array[Byte] = headers(slot)

  private[this] val headers = Array.tabulate(slots) { slot =>
    val path = file.toString.getBytes(StandardCharsets.UTF_8)
    val length = Math.max(38 + path.length, padding) match { case n => n + (6 - n % 4) % 4 }
    val out = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN)
    out.put(FeatureRing.Magic).put(secret).putLong(slotOffset(slot)).putInt(rowBytes).putShort(path.length.toShort).put(path)
    out.array()
  }

  private def deleteFile(): Unit = synchronized {
    if (!fileDeleted) {
      fileDeleted = true
      try Files.deleteIfExists(file) catch { case NonFatal(e) => logWarning(s"Could not delete $file: $e") }
    }
  }

  /** Deletes the file if it is still there, and unmaps and closes this JVM's mapping. */
  def close(): Unit = synchronized {
    if (!closed) {
      closed = true
      deleteFile()
      StorageUtils.dispose(memory)
      channel.close()
    }
  }
}

private[sql] object FeatureRing extends Logging {

  /**
   * The SQL conf that turns the shared memory on (`true`, where `/dev/shm` exists); off by default,
   * when rows travel in the Arrow batches as for any other UDF. Off by default because its pipelined
   * runner makes PySpark print a `BrokenPipeError` traceback whenever a job stops reading a task's
   * results early (`show()`, `limit`), and keeps a Python worker pool of its own.
   */
  val EnabledConf = "spark.dlbridge.inference.sharedMemory.enabled"

  /** Whether the session's conf leaves the shared memory on. */
  def enabled(conf: SQLConf): Boolean = ProjectedArrowEvalPython.booleanConf(conf, EnabledConf, default = false,
    "set it to true to hand feature rows over in shared memory, or unset it.")

  /** Where the files live: shared memory on Linux. */
  val Directory: Path = Paths.get("/dev/shm")

  /** Names start with this, then the creating JVM's process id. */
  val FilePrefix = "dlbridge-ring-"

  val Magic: Array[Byte] = "DLBRING1".getBytes(StandardCharsets.US_ASCII)

  /** The file's first page, which holds the magic string and the secret. */
  val HeaderPage = 4096L

  /** Bytes the whole file may map; a batch whose slots would not fit in it travels in the batches. */
  val MaxBytes: Long = 64L << 20

  private[this] val random = new SecureRandom()
  @volatile private[this] var swept = false

  /**
   * A ring for batches of up to `maxRows` rows of `rowBytes` bytes: 4 slots (fewer, and at least 2,
   * when they would map more than [[MaxBytes]]), or None when even 2 would, when `/dev/shm` is not a
   * writable directory, or when the file cannot be made.
   */
  def create(rowBytes: Int, maxRows: Int, padding: Int): Option[FeatureRing] = {
    val slotBytes = roundUpToPage(rowBytes.toLong * maxRows)
    val slots = Math.min(4L, (MaxBytes - HeaderPage) / Math.max(slotBytes, 1L)).toInt
    if (rowBytes <= 0 || slots < 2 || !Files.isDirectory(Directory) || !Files.isWritable(Directory)) return None
    sweepOnce()
    val file = Directory.resolve(s"$FilePrefix${ProcessHandle.current().pid()}-${UUID.randomUUID()}")
    try {
      Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")))
      val size = HeaderPage + slots * slotBytes
      val raf = new RandomAccessFile(file.toFile, "rw")
      val channel = raf.getChannel
      val memory = try {
        allocate(channel, size)
        channel.map(FileChannel.MapMode.READ_WRITE, 0, size)
      } catch { case e: Throwable => raf.close(); throw e } // closes the channel too
      val secret = new Array[Byte](16)
      random.nextBytes(secret)
      memory.put(0, Magic).put(Magic.length, secret)
      Some(new FeatureRing(file, channel, memory, secret, slots, rowBytes, slotBytes, padding))
    } catch {
      case e: IOException =>
        logWarning(s"Feature rows will travel in the Arrow batches: could not create $file ($e).")
        Files.deleteIfExists(file)
        None
    }
  }

  /**
   * Writes zeros over the whole file, so that its memory is taken now: a full `/dev/shm` (a
   * container's is often 64 MB) then fails here, and the rows travel in the batches, instead of
   * killing the process with SIGBUS at the first write to a page it cannot have.
   */
  private def allocate(channel: FileChannel, size: Long): Unit = {
    val zeros = ByteBuffer.allocateDirect(1 << 20)
    var position = 0L
    while (position < size) {
      zeros.clear().limit(Math.min(zeros.capacity().toLong, size - position).toInt)
      while (zeros.hasRemaining) position += channel.write(zeros, position)
    }
    StorageUtils.dispose(zeros)
  }

  private def roundUpToPage(bytes: Long): Long = (bytes + 4095L) & ~4095L

  /** Deletes, once per JVM, the files of JVMs that are gone (killed before they could delete them). */
  private def sweepOnce(): Unit = if (!swept) synchronized {
    if (!swept) {
      swept = true
      try {
        val stream = Files.newDirectoryStream(Directory, s"$FilePrefix*")
        try stream.forEach { file =>
          val pid = file.getFileName.toString.stripPrefix(FilePrefix).takeWhile(_ != '-').toLongOption
          if (pid.exists(p => !ProcessHandle.of(p).isPresent)) Files.deleteIfExists(file)
        } finally stream.close()
      } catch { case NonFatal(e) => logWarning(s"Could not clean $Directory of old feature rings: $e") }
    }
  }
}
