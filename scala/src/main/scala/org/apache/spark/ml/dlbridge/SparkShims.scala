package org.apache.spark.ml.dlbridge

import java.nio.file.{Files, Paths}
import java.util.concurrent.ConcurrentHashMap

import scala.util.control.NonFatal

import org.apache.spark.{CleanerListener, ContextCleaner, SparkContext}
import org.apache.spark.ml.param.Params
import org.apache.spark.ml.util.{DefaultParamsReader, DefaultParamsWriter, ReadWriteUtils}
import org.apache.spark.sql.SparkSession
import org.apache.spark.util.ShutdownHookManager
import org.json4s.JObject

/**
 * dlbridge's only file in Spark ML's namespace (`org.apache.spark.sql.dlbridge.SqlShims` is its
 * twin for Spark SQL): it reaches the `private[spark]` / `private[ml]` helpers the rest of the
 * project needs, so that everything else stays in `dlbridge.*`.
 */
object SparkShims {

  /** Runs `hook` when the JVM shuts down, through Spark's own ordered hook manager. */
  def addShutdownHook(hook: () => Unit): AnyRef = ShutdownHookManager.addShutdownHook(hook)

  /** Writes `path/metadata` as Spark's DefaultParamsWriter does (class, uid, params, versions). */
  def saveMetadata(instance: Params, path: String, session: SparkSession, extra: JObject): Unit =
    DefaultParamsWriter.saveMetadata(instance, path, session, Some(extra))

  /**
   * Reads `path/metadata`, checks it names `expectedClassName`, and sets the saved params on
   * `instance`. Returns the metadata's extra fields as JSON.
   */
  def loadMetadataInto(instance: Params, path: String, session: SparkSession, expectedClassName: String): String = {
    val metadata = DefaultParamsReader.loadMetadata(path, session, expectedClassName)
    metadata.getAndSetParams(instance)
    metadata.metadataJson
  }

  /**
   * True while this thread runs `MLWriter.saveToLocal` / `MLReader.loadFromLocal`, as Spark Connect's
   * model cache does to offload models to the driver's local disk: paths are then local files, not
   * paths of the default (Hadoop) file system.
   */
  def localSavingMode: Boolean = ReadWriteUtils.localSavingModeState.get()

  /** The uid saved in `path/metadata` (to construct the instance before setting params). */
  def savedUid(path: String, session: SparkSession, expectedClassName: String): String =
    DefaultParamsReader.loadMetadata(path, session, expectedClassName).uid

  /**
   * Deletes the driver-side file `path` of PySpark broadcast `broadcastId` once Spark's
   * ContextCleaner has cleaned that broadcast, i.e. once no Python object and no plan refers to it
   * any more. PySpark writes every broadcast's value to such a file and removes it only in
   * `Broadcast.destroy()`, which nothing may call while a lazily built plan could still read it.
   * Without a cleaner (`spark.cleaner.referenceTracking=false`) the file stays until `sc` stops.
   */
  def deleteWhenBroadcastCleaned(sc: SparkContext, broadcastId: Long, path: String): Unit =
    sc.cleaner.foreach(cleaner => BroadcastFiles.of(cleaner).put(broadcastId, path))

  /** Per ContextCleaner, the files to delete by broadcast id, and the one listener that deletes them. */
  private object BroadcastFiles {
    private val byCleaner = new java.util.WeakHashMap[ContextCleaner, ConcurrentHashMap[Long, String]]()

    def of(cleaner: ContextCleaner): ConcurrentHashMap[Long, String] = byCleaner.synchronized {
      Option(byCleaner.get(cleaner)).getOrElse {
        val files = new ConcurrentHashMap[Long, String]()
        cleaner.attachListener(new CleanerListener {
          override def broadcastCleaned(broadcastId: Long): Unit = Option(files.remove(broadcastId)).foreach { path =>
            try Files.deleteIfExists(Paths.get(path))
            catch { case NonFatal(_) => () } // the context's own temp dir removal gets it at stop
          }
          override def rddCleaned(rddId: Int): Unit = ()
          override def shuffleCleaned(shuffleId: Int): Unit = ()
          override def accumCleaned(accId: Long): Unit = ()
          override def checkpointCleaned(rddId: Long): Unit = ()
        })
        byCleaner.put(cleaner, files)
        files
      }
    }
  }
}
