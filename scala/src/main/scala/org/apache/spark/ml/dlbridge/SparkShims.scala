package org.apache.spark.ml.dlbridge

import org.apache.spark.util.ShutdownHookManager

/**
 * The only dlbridge file in Spark's namespace: it reaches the `private[spark]` helpers the rest of
 * the project needs, so that everything else stays in `dlbridge.*`.
 */
object SparkShims {

  /** Runs `hook` when the JVM shuts down, through Spark's own ordered hook manager. */
  def addShutdownHook(hook: () => Unit): AnyRef = ShutdownHookManager.addShutdownHook(hook)
}
