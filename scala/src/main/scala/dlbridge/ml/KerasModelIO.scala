package dlbridge.ml

import java.io.{ByteArrayOutputStream, IOException}
import java.nio.charset.StandardCharsets

import org.apache.hadoop.fs.Path
import org.apache.spark.sql.SparkSession

/** Reads and writes model files through the Hadoop FileSystem API (local, hdfs://, s3a://, ...). */
private[ml] object KerasModelIO {

  /** All bytes of `path`; an IOException naming the path if it cannot be read. */
  def readBytes(path: String, session: SparkSession): Array[Byte] = {
    val hadoopPath = new Path(path)
    val fs = hadoopPath.getFileSystem(session.sparkContext.hadoopConfiguration)
    if (!fs.exists(hadoopPath)) throw new IOException(s"Model file $path does not exist. Fix: check the path " +
      "(paths without a scheme are resolved against the default file system).")
    val in = fs.open(hadoopPath)
    try {
      val out = new ByteArrayOutputStream()
      in.transferTo(out)
      out.toByteArray
    } finally in.close()
  }

  /** Writes `bytes` to `path`, replacing an existing file. */
  def writeBytes(path: String, bytes: Array[Byte], session: SparkSession): Unit = {
    val hadoopPath = new Path(path)
    val out = hadoopPath.getFileSystem(session.sparkContext.hadoopConfiguration).create(hadoopPath, true)
    try out.write(bytes)
    finally out.close()
  }

  def readString(path: String, session: SparkSession): String =
    new String(readBytes(path, session), StandardCharsets.UTF_8)

  def writeString(path: String, text: String, session: SparkSession): Unit =
    writeBytes(path, text.getBytes(StandardCharsets.UTF_8), session)
}
