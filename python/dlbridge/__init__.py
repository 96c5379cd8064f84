"""dlbridge: deep-learning models written in Python as Spark ML stages.

Importing this package has no side effects: nothing is started until a
Python-backed stage is first used.
"""
from dlbridge.registry import (
    model_factory_names,
    register_estimator,
    register_model_factory,
    register_transformer,
    registered_names,
)

__all__ = ["register_transformer", "register_estimator", "registered_names", "register_model_factory",
           "model_factory_names", "jar_path"]
__version__ = "0.1.0"


def jar_path() -> str:
    """Path of the dlbridge jar bundled in this installation.

    Use it as ``SparkSession.builder.config("spark.jars", dlbridge.jar_path())``.
    Raises ``FileNotFoundError`` if the package was installed without the jar
    (build it with ``dev/build``).
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
