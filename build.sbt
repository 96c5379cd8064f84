// dlbridge: Scala 2.13 against Spark 4.3.0 ("provided").
//
// Spark 4.3.0 is not on the Maven registry yet, so the build compiles against
// the jars of the pinned pyspark==4.3.0 wheel (dev/env.sh exports its
// SPARK_HOME). They are unmanaged and never packaged: at run time Spark
// provides them, exactly like a "provided" dependency.
import java.io.File

ThisBuild / organization := "io.dlbridge"
// The one version of dlbridge is written in python/dlbridge/_version.py; setup.py reads the same line.
ThisBuild / version := {
  val file = (ThisBuild / baseDirectory).value / "python" / "dlbridge" / "_version.py"
  val line = """(?m)^__version__ = "([^"]+)"$""".r
  line.findFirstMatchIn(IO.read(file)).map(_.group(1))
    .getOrElse(sys.error(s"$file has no line of the form: __version__ = <quoted version>"))
}
ThisBuild / scalaVersion := "2.13.18"

lazy val sparkJars = settingKey[File]("Directory of the Spark 4.3.0 jars (from $SPARK_HOME/jars)")

/** The JVM flags Spark itself passes on Java 17 (launcher's JavaModuleOptions). */
val sparkJavaOptions = Seq(
  "-XX:+IgnoreUnrecognizedVMOptions",
  "--add-opens=java.base/java.lang=ALL-UNNAMED",
  "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
  "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
  "--add-opens=java.base/java.io=ALL-UNNAMED",
  "--add-opens=java.base/java.net=ALL-UNNAMED",
  "--add-opens=java.base/java.nio=ALL-UNNAMED",
  "--add-opens=java.base/java.util=ALL-UNNAMED",
  "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
  "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
  "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
  "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
  "--add-opens=java.base/sun.nio.cs=ALL-UNNAMED",
  "--add-opens=java.base/sun.security.action=ALL-UNNAMED",
  "--add-opens=java.base/sun.util.calendar=ALL-UNNAMED",
  "-Djdk.reflect.useDirectMethodHandle=false",
  "-Dio.netty.tryReflectionSetAccessible=true"
)

lazy val sparkProvided = Seq(
  sparkJars := {
    val home = sys.env.getOrElse("SPARK_HOME",
      sys.error("SPARK_HOME is not set: run sbt through dev/sbt, which points it at the pinned pyspark 4.3.0"))
    val dir = new File(home, "jars")
    require(dir.isDirectory, s"SPARK_HOME=$home has no jars/ directory; expected a pyspark 4.3.0 installation")
    dir
  },
  Compile / unmanagedJars ++= (sparkJars.value ** "*.jar").classpath,
  scalacOptions ++= Seq("-deprecation", "-feature", "-unchecked", "-release", "17"),
  javacOptions ++= Seq("--release", "17")
)

lazy val root = (project in file("."))
  .settings(sparkProvided)
  .settings(
    name := "dlbridge",
    Compile / scalaSource := baseDirectory.value / "scala" / "src" / "main" / "scala",
    Compile / javaSource := baseDirectory.value / "scala" / "src" / "main" / "java",
    // META-INF/services: the stages Spark Connect ML may instantiate by class name.
    Compile / resourceDirectory := baseDirectory.value / "scala" / "src" / "main" / "resources",
    Test / scalaSource := baseDirectory.value / "tests" / "scala",
    Test / javaSource := baseDirectory.value / "tests" / "java",
    Test / resourceDirectory := baseDirectory.value / "tests" / "resources",
    libraryDependencies ++= Seq(
      "org.scalatest" %% "scalatest" % "3.2.19" % Test,
      "com.github.sbt" % "junit-interface" % "0.13.3" % Test
    ),
    Test / fork := true,
    Test / parallelExecution := false,
    Test / javaOptions ++= sparkJavaOptions ++ Seq("-Xmx3g"),
    // The test JVM's temporary files (Spark's local dirs, the suites' temp dirs) go where the caller's TMPDIR
    // says, as the Python processes' do: dev/test points it at a fresh directory that must be empty afterwards.
    Test / javaOptions ++= sys.env.get("TMPDIR").filter(_.nonEmpty).map(dir => s"-Djava.io.tmpdir=$dir").toSeq,
    // The test UDF modules and the example estimators (centroids), then this checkout's python/ (else a
    // companion would import another copy of dlbridge).
    Test / envVars ++= Map(
      "PYTHONPATH" -> (Seq(baseDirectory.value / "tests" / "python" / "udfs", baseDirectory.value / "examples" / "python",
        baseDirectory.value / "python")
        .map(_.getAbsolutePath) ++ sys.env.get("PYTHONPATH")).mkString(File.pathSeparator)
    ),
    Test / testOptions += Tests.Argument(TestFrameworks.ScalaTest, "-oDF"),
    // The jar knows its own version at run time (dlbridge.DlbridgeVersion), for the check against the Python package.
    Compile / resourceGenerators += Def.task {
      val out = (Compile / resourceManaged).value / "dlbridge" / "version.properties"
      IO.write(out, s"version=${version.value}\n")
      Seq(out)
    }.taskValue
  )

/** The example apps (Scala, Java), packaged as their own jar; run by dev/demo and the test suite. */
lazy val examples = (project in file("examples"))
  .dependsOn(root)
  .settings(sparkProvided)
  .settings(
    name := "dlbridge-examples",
    Compile / scalaSource := baseDirectory.value / "scala",
    Compile / javaSource := baseDirectory.value / "java"
  )
