"""The check that the dlbridge jar and the dlbridge Python package are the same release.

The jar and the Python package are built together and speak one private protocol
(the ``PythonBackend`` interface, the model state files, the Keras stage's
params), so a jar of one version with a Python package of another fails at its
first use, with both versions in the message, instead of somewhere later.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Tuple

from dlbridge._version import __version__


def jar_version(jvm: Any) -> Tuple[str, str]:
    """The version and location of the dlbridge jar on the classpath of the JVM behind ``jvm``.

    Parameters
    ----------
    jvm : py4j.java_gateway.JVMView
        The JVM of a SparkContext (``sc._jvm``, or a companion's ``gateway.jvm``).

    Returns
    -------
    tuple of str
        ``(version, location)``; the version reads ``"older than 0.1.0"`` for a jar
        built before jars knew their version.
    """
    from py4j.java_gateway import JavaClass

    version_class = jvm.dlbridge.DlbridgeVersion
    if not isinstance(version_class, JavaClass):  # py4j answers a JavaPackage for a missing class
        return "older than 0.1.0 (it has no dlbridge.DlbridgeVersion)", "(unknown location)"
    return str(version_class.get()), str(version_class.jarLocation())


def check_jar(jvm: Any) -> None:
    """Raises ``RuntimeError`` unless the dlbridge jar in ``jvm`` has this package's version.

    Called the first time a JVM stage reaches the Python backend: when a PySpark
    driver registers its backend and when a companion backend starts.

    Parameters
    ----------
    jvm : py4j.java_gateway.JVMView
        The JVM whose classpath holds the dlbridge jar.

    Raises
    ------
    RuntimeError
        Naming both versions, both locations and the fix.
    """
    version, location = jar_version(jvm)
    if version == __version__:
        return
    package = os.path.dirname(os.path.abspath(__file__))
    raise RuntimeError(
        f"dlbridge version mismatch: the dlbridge jar on the Spark driver's classpath is version {version} "
        f"({location}), but the dlbridge Python package that {sys.executable} imports is version {__version__} "
        f"({package}). The jar and the Python package must be the same release. Fix: put the jar that ships "
        "with the Python package on the classpath (spark.jars=dlbridge.jar_path(), or dlbridge.spark_session()), "
        "or install the dlbridge Python package of the jar's version into that interpreter "
        "(pip install dlbridge==<jar version>)."
    )
