"""dlbridge: deep-learning models written in Python as Spark ML stages.

Importing this package has no side effects: nothing is started until a
Python-backed stage is first used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from dlbridge._version import __version__
from dlbridge.registry import (
    model_factory_names,
    register_estimator,
    register_model_factory,
    register_transformer,
    registered_names,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["register_transformer", "register_estimator", "registered_names", "register_model_factory",
           "model_factory_names", "jar_path", "spark_session", "__version__"]


def jar_path() -> str:
    """Path of the dlbridge jar bundled in this installation.

    Use it as ``SparkSession.builder.config("spark.jars", dlbridge.jar_path())``,
    or let :func:`spark_session` do it. Raises ``FileNotFoundError`` if the
    package was installed without the jar (build it with ``dev/build``).
    """
    import glob
    import os

    here = os.path.join(os.path.dirname(__file__), "jars")
    jars = sorted(glob.glob(os.path.join(here, "dlbridge*.jar")))
    if not jars:
        raise FileNotFoundError(
            f"No dlbridge jar in {here}: run `dev/build` (which copies the jar built by sbt "
            "there) or pass the jar from target/ to spark.jars yourself."
        )
    return jars[-1]


def spark_session(master: str | None = None, app_name: str | None = None,
                  conf: Mapping[str, str] | None = None) -> "SparkSession":
    """Gets or creates a SparkSession whose driver and executors have the dlbridge jar.

    The jar of this installation (:func:`jar_path`) is appended to ``spark.jars``.
    ``spark.pyspark.python`` in ``conf`` chooses the executors' Python as
    ``spark-submit`` does (PySpark started from a plain ``python`` process reads
    only ``PYSPARK_PYTHON``), e.g. ``./env/bin/python`` for a packed virtualenv
    shipped with ``spark.archives`` as ``venv.tar.gz#env``.

    Parameters
    ----------
    master : str, optional
        Master URL such as ``local[2]`` or ``spark://host:7077``. Defaults to
        ``None``: ``spark-submit``'s ``--master``, else Spark's ``local[*]``.
    app_name : str, optional
        Application name. Defaults to ``None``: Spark's own.
    conf : mapping of str to str, optional
        Further Spark configuration. Defaults to ``None``.

    Returns
    -------
    pyspark.sql.SparkSession

    Raises
    ------
    RuntimeError
        If a SparkSession already runs in this process without the jar (a
        running JVM cannot take it any more): stop it first, or start it with
        ``spark.jars`` set to :func:`jar_path`.

    Examples
    --------
    A session on a standalone cluster whose executors run a packed virtualenv::

        spark = dlbridge.spark_session("spark://master:7077", conf={
            "spark.archives": "dlbridge-env.tar.gz#env", "spark.pyspark.python": "./env/bin/python"})
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    settings = dict(conf or {})
    settings["spark.jars"] = ",".join(j for j in (settings.get("spark.jars"), jar_path()) if j)
    creating = SparkContext._active_spark_context is None
    builder = SparkSession.builder
    if master:
        builder = builder.master(master)
    if app_name:
        builder = builder.appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if creating and settings.get("spark.pyspark.python"):
        session.sparkContext.pythonExec = settings["spark.pyspark.python"]
    from dlbridge.backend.inprocess import bridge_class

    bridge_class(session)  # raises if a session that was already running lacks the jar
    return session
