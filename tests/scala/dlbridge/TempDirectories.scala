package dlbridge

import java.nio.file.{Files, Path}

import org.apache.commons.io.FileUtils
import org.scalatest.{BeforeAndAfterAll, Suite}

/**
 * Temporary directories for a suite's files: each one is created under one root directory of the suite
 * (in `java.io.tmpdir`), which `afterAll` deletes recursively once the suite's other resources (its
 * SparkSession) are stopped. A suite leaves nothing behind, even when a test fails.
 */
trait TempDirectories extends BeforeAndAfterAll { self: Suite =>

  private var root: Option[Path] = None

  /** A new empty directory `<root>/<prefix><digits>`, removed with the root after the suite. */
  protected def tempDir(prefix: String): Path = synchronized {
    val parent = root.getOrElse {
      val created = Files.createTempDirectory(s"dlbridge-${getClass.getSimpleName}-")
      root = Some(created)
      created
    }
    Files.createTempDirectory(parent, prefix)
  }

  override protected def afterAll(): Unit = {
    try super.afterAll()
    finally synchronized {
      root.foreach(dir => FileUtils.deleteDirectory(dir.toFile))
      root = None
    }
  }
}
