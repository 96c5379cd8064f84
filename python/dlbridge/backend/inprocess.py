"""Registers the backend inside the user's own PySpark driver (no second process)."""
from __future__ import annotations

import threading

from py4j.java_gateway import JavaClass
from pyspark.sql import SparkSession

_lock = threading.Lock()


def ensure_backend(spark: SparkSession) -> None:
    """Registers this Python driver as the dlbridge backend of ``spark``'s SparkContext.

    Idempotent and explicit: the Python stages call it before their first JVM
    call. Checks that the dlbridge jar has this package's version
    (:func:`dlbridge.versions.check_jar`) and imports the modules named by
    ``spark.dlbridge.python.modules``, as the companion backend of a JVM
    application does. It starts PySpark's authenticated py4j callback server (as
    ``foreachBatch`` does) so the JVM stages can call back into this process.
    """
    from pyspark.java_gateway import ensure_callback_server_started

    from dlbridge.backend.backend import Backend, import_modules
    from dlbridge.versions import check_jar

    sc = spark.sparkContext
    bridge = bridge_class(spark)
    with _lock:
        if bridge.isRegistered(sc._jsc):
            return
        check_jar(sc._jvm)
        conf = sc.getConf()
        import_modules(conf.get("spark.dlbridge.python.modules", ""), conf.get("spark.submit.pyFiles", ""))
        ensure_callback_server_started(sc._gateway)
        bridge.register(sc._jsc, Backend(spark))


def bridge_class(spark: SparkSession) -> JavaClass:
    """The JVM class ``dlbridge.python.PythonBridge``; raises ``RuntimeError`` if the jar is missing."""
    bridge = spark.sparkContext._jvm.dlbridge.python.PythonBridge
    if not isinstance(bridge, JavaClass):  # py4j answers a JavaPackage for a missing class
        raise RuntimeError(
            "The dlbridge jar is not on the Spark driver's classpath (class "
            "dlbridge.python.PythonBridge not found). Fix: start Spark with "
            "spark.jars=dlbridge.jar_path() (or spark-submit --jars <dlbridge jar>)."
        )
    return bridge
