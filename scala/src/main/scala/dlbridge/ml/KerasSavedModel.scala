package dlbridge.ml

import java.io.{ByteArrayOutputStream, IOException}
import java.util.zip.{ZipEntry, ZipOutputStream}

import scala.collection.mutable.ArrayBuffer

import org.apache.hadoop.fs.{FileSystem, Path}
import org.apache.spark.ml.util.Identifiable
import org.apache.spark.sql.SparkSession
import org.json4s.JsonDSL._
import org.json4s.jackson.JsonMethods.{compact, render}

/**
 * TensorFlow SavedModel directories as [[KerasModel]] stages (`KerasModel.fromSavedModel`).
 *
 * The directory (any Hadoop FS path) is read through the Hadoop FileSystem API into one zip
 * archive in the driver's memory, [[Archive]]: the stage keeps it as its network the way a trained
 * model keeps its `.keras` archive, saves it as `data/saved_model.zip` and broadcasts it to the
 * executors, where Python unpacks it into a temporary directory, loads it with Keras 3's
 * `keras.layers.TFSMLayer(dir, call_endpoint=endpoint)` once per Python worker and removes the
 * directory (`dlbridge.inference.saved_model`). A saved stage therefore keeps working after the
 * original directory is deleted.
 */
private[ml] object KerasSavedModel {

  /** The stage's state file (and saved `data/` file) holding the SavedModel directory as a zip archive. */
  val Archive = "saved_model.zip"

  /** The endpoint used when none is given: the signature `tf.saved_model.save` and `model.export` write. */
  val DefaultEndpoint = "serving_default"

  /** See [[KerasModel.fromSavedModel]]. */
  def fromSavedModel(path: String, endpoint: String): KerasModel = {
    require(endpoint != null && endpoint.nonEmpty, s"KerasModel.fromSavedModel('$path', endpoint): endpoint must " +
      s"name a signature or function of the SavedModel. Received: '$endpoint'. Fix: pass e.g. '$DefaultEndpoint'.")
    val session = SparkSession.active
    val args = compact(render(("source" -> s"SavedModel '$path'") ~ ("endpoint" -> endpoint)))
    val state = PythonStages.loadState(session, KerasModel.RegisteredName, args, Map(Archive -> pack(path, session)))
    KerasModel.fromState(Identifiable.randomUID("kerasModel"), state)
  }

  /**
   * The files of the SavedModel directory `path` as a zip archive (names relative to `path`, in
   * sorted order, with a fixed timestamp, so one directory always packs to the same bytes). An
   * IOException naming `path` if it does not exist or holds no `saved_model.pb`.
   */
  def pack(path: String, session: SparkSession): Array[Byte] = {
    val root = new Path(path)
    val fs = KerasModelIO.fileSystem(root, session)
    if (!fs.exists(root)) throw new IOException(s"SavedModel path '$path' does not exist. Fix: check the path " +
      "(paths without a scheme are resolved against the default file system).")
    if (!fs.getFileStatus(root).isDirectory || !fs.exists(new Path(root, "saved_model.pb")))
      throw new IOException(s"'$path' is not a TensorFlow SavedModel directory: it holds no saved_model.pb. Fix: " +
        "pass the directory written by tf.saved_model.save(obj, dir) or model.export(dir) (the one holding " +
        "saved_model.pb and variables/); for a .keras file use KerasModel.fromFile.")
    val base = fs.makeQualified(root).toUri
    val bytes = new ByteArrayOutputStream()
    val zip = new ZipOutputStream(bytes)
    try files(fs, root).foreach { file =>
      val entry = new ZipEntry(base.relativize(file.toUri).getPath)
      entry.setTime(0L)
      zip.putNextEntry(entry)
      val in = fs.open(file)
      try in.transferTo(zip)
      finally in.close()
      zip.closeEntry()
    } finally zip.close()
    bytes.toByteArray
  }

  /** Every file under `root`, sorted, without Hadoop's `.crc` checksum files. */
  private def files(fs: FileSystem, root: Path): Seq[Path] = {
    val found = ArrayBuffer.empty[Path]
    val listing = fs.listFiles(root, true)
    while (listing.hasNext) found += listing.next().getPath
    found.filterNot(p => p.getName.startsWith(".") && p.getName.endsWith(".crc")).sortBy(_.toString).toSeq
  }
}
