package dlbridge.ml

import java.io.{ByteArrayOutputStream, IOException}
import java.nio.charset.StandardCharsets

import org.apache.hadoop.fs.{FileSystem, Path}
import org.apache.spark.ml.dlbridge.SparkShims
import org.apache.spark.sql.SparkSession

/**
 * Reads and writes model files through the Hadoop FileSystem API (local, hdfs://, s3a://, ...), or
 * the driver's local file system while Spark saves or loads "to local" (Spark Connect's model cache).
 */
private[ml] object KerasModelIO {

  /** The file system of `path`: the local one in Spark's local saving mode, else the path's own. */
  def fileSystem(path: Path, session: SparkSession): FileSystem = {
    val conf = session.sparkContext.hadoopConfiguration
    if (SparkShims.localSavingMode) FileSystem.getLocal(conf) else path.getFileSystem(conf)
  }

  /** All bytes of `path`; an IOException naming the path if it cannot be read. */
  def readBytes(path: String, session: SparkSession): Array[Byte] = {
    val hadoopPath = new Path(path)
    val fs = fileSystem(hadoopPath, session)
    if (!fs.exists(hadoopPath)) throw new IOException(s"Model file $path does not exist. Fix: check the path " +
      "(paths without a scheme are resolved against the default file system).")
    val in = fs.open(hadoopPath)
    try {
      val out = new ByteArrayOutputStream()
      in.transferTo(out)
      out.toByteArray
    } finally in.close()
  }

  /** Whether `path` exists. */
  def exists(path: String, session: SparkSession): Boolean = {
    val hadoopPath = new Path(path)
    fileSystem(hadoopPath, session).exists(hadoopPath)
  }

  /** Writes `bytes` to `path`, replacing an existing file. */
  def writeBytes(path: String, bytes: Array[Byte], session: SparkSession): Unit = {
    val hadoopPath = new Path(path)
    val out = fileSystem(hadoopPath, session).create(hadoopPath, true)
    try out.write(bytes)
    finally out.close()
  }

  def readString(path: String, session: SparkSession): String =
    new String(readBytes(path, session), StandardCharsets.UTF_8)

  def writeString(path: String, text: String, session: SparkSession): Unit =
    writeBytes(path, text.getBytes(StandardCharsets.UTF_8), session)
}
