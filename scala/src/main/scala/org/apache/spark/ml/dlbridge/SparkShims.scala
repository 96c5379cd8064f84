package org.apache.spark.ml.dlbridge

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
}
