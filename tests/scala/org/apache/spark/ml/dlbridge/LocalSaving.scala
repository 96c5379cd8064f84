package org.apache.spark.ml.dlbridge

import org.apache.spark.ml.util.{MLReader, MLWriter}

/**
 * Test access to Spark's `private[spark]` local saving mode, which Spark Connect's model cache uses to
 * offload models to the driver's disk (`MLWriter.saveToLocal`, `MLReader.loadFromLocal`).
 */
object LocalSaving {

  /** `writer.saveToLocal(path)`. */
  def save(writer: MLWriter, path: String): Unit = writer.saveToLocal(path)

  /** `reader.loadFromLocal(path)`. */
  def load[T](reader: MLReader[T], path: String): T = reader.loadFromLocal(path)
}
