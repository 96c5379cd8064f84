package dlbridge.python

import org.apache.spark.SparkConf

/** Chooses the Python interpreters for the companion backend and the executors, in Spark's order. */
private[dlbridge] object PythonExecutable {

  /**
   * The driver-side interpreter: `spark.pyspark.driver.python`, `spark.pyspark.python`,
   * `PYSPARK_DRIVER_PYTHON`, `PYSPARK_PYTHON`, then `python3` (the order of Spark's PythonRunner).
   */
  def forDriver(conf: SparkConf, env: Map[String, String] = sys.env): String =
    conf.getOption("spark.pyspark.driver.python")
      .orElse(conf.getOption("spark.pyspark.python"))
      .orElse(env.get("PYSPARK_DRIVER_PYTHON"))
      .orElse(env.get("PYSPARK_PYTHON"))
      .filter(_.trim.nonEmpty)
      .getOrElse("python3")

  /** The executors' interpreter: `spark.pyspark.python`, `PYSPARK_PYTHON`, else the driver's. */
  def forExecutors(conf: SparkConf, env: Map[String, String] = sys.env): String =
    conf.getOption("spark.pyspark.python")
      .orElse(env.get("PYSPARK_PYTHON"))
      .filter(_.trim.nonEmpty)
      .getOrElse(forDriver(conf, env))
}
