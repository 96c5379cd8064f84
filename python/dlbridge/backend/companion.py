"""The companion backend process that a JVM driver starts (``python -m dlbridge.backend``).

It connects back to the JVM's py4j gateway (loopback, authenticated with the
secret from ``DLBRIDGE_GATEWAY_SECRET``), wraps the JVM's SparkContext and
SparkSession without owning them, registers a :class:`Backend`, and then blocks
until its stdin closes: when the SparkContext stops or the JVM dies.
"""
from __future__ import annotations

import logging
import os
import sys
import traceback

from py4j.java_gateway import CallbackServerParameters, GatewayParameters, JavaGateway, JavaObject
from pyspark import SparkConf, SparkContext

log = logging.getLogger("dlbridge.backend")

# The java_import list of pyspark.java_gateway.launch_gateway: SparkContext init needs it.
_JAVA_IMPORTS = (
    "org.apache.spark.SparkConf",
    "org.apache.spark.api.java.*",
    "org.apache.spark.api.python.*",
    "org.apache.spark.ml.python.*",
    "org.apache.spark.mllib.api.python.*",
    "org.apache.spark.resource.*",
    "org.apache.spark.sql.Encoders",
    "org.apache.spark.sql.OnSuccessCall",
    "org.apache.spark.sql.functions",
    "org.apache.spark.sql.classic.*",
    "org.apache.spark.sql.api.python.*",
    "org.apache.spark.sql.hive.*",
    "scala.Tuple2",
)


class BorrowedSparkContext(SparkContext):
    """A Python SparkContext over a JVM SparkContext that the JVM application owns.

    ``stop()`` releases only the Python side, so nothing the backend does (not
    even a failed initialisation) can stop the user's SparkContext.
    """

    def stop(self) -> None:
        self._jsc = None  # type: ignore[assignment]
        if getattr(self, "_accumulatorServer", None):
            self._accumulatorServer.shutdown()
            self._accumulatorServer = None  # type: ignore[assignment]
        with SparkContext._lock:
            SparkContext._active_spark_context = None  # type: ignore[assignment]


def connect() -> JavaGateway:
    """Connects to the JVM gateway and starts the authenticated callback server."""
    from py4j.java_gateway import java_import

    port = int(os.environ["DLBRIDGE_GATEWAY_PORT"])
    secret = os.environ.pop("DLBRIDGE_GATEWAY_SECRET")
    gateway = JavaGateway(
        gateway_parameters=GatewayParameters(port=port, auth_token=secret, auto_convert=True),
        callback_server_parameters=CallbackServerParameters(
            port=0, auth_token=secret, daemonize=True, daemonize_connections=True
        ),
    )
    callback_port = gateway.get_callback_server().get_listening_port()
    server = JavaObject("GATEWAY_SERVER", gateway._gateway_client)
    server.resetCallbackClient(server.getCallbackClient().getAddress(), callback_port)
    for name in _JAVA_IMPORTS:
        java_import(gateway.jvm, name)
    return gateway


def serve(gateway: JavaGateway) -> None:
    """Checks the jar's version, wraps the JVM's Spark objects, registers the backend, blocks until stdin closes."""
    from pyspark.sql import SparkSession

    from dlbridge.backend.backend import Backend, import_modules
    from dlbridge.versions import check_jar

    entry = gateway.entry_point
    try:
        check_jar(gateway.jvm)
        jsc = entry.javaSparkContext()
        sc = BorrowedSparkContext(gateway=gateway, jsc=jsc, conf=SparkConf(_jconf=jsc.sc().conf()))
        spark = SparkSession(sc, jsparkSession=entry.sparkSession())
        import_modules(entry.modules(), sc.getConf().get("spark.submit.pyFiles", ""))
        entry.register(Backend(spark))
    except BaseException as e:
        entry.fail(f"{type(e).__name__}: {e}\n\nPython traceback:\n{traceback.format_exc()}")
        raise
    log.info("dlbridge backend ready (pid %d)", os.getpid())
    sys.stdin.buffer.read()  # blocks until the JVM closes our stdin or dies


def forward_progress(prefix: str) -> None:
    """Sends the trainer's progress lines (logger ``dlbridge.progress``) to the JVM driver's console.

    Each goes to stdout as one line starting with ``prefix``; the JVM prints
    such lines on its ``System.err`` (``dlbridge.python.OutputTail``), while
    every other line of this process only reaches the JVM's log.
    """
    from dlbridge.trainer.progress import LOGGER_NAME

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(prefix + "%(message)s"))
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main() -> int:
    """Runs the companion; the exit code is 0 after a normal stop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one line per call otherwise
    forward_progress(os.environ.get("DLBRIDGE_CONSOLE_PREFIX", ""))
    if "DLBRIDGE_GATEWAY_PORT" not in os.environ or "DLBRIDGE_GATEWAY_SECRET" not in os.environ:
        log.error("dlbridge.backend is started by the dlbridge jar (it needs the gateway port and secret), not by hand.")
        return 2
    gateway = connect()
    try:
        serve(gateway)
    finally:
        gateway.shutdown()
    return 0
