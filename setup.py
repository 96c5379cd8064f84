"""pip-installable Python side of dlbridge (sources under ``python/``).

Versions are pinned so that the driver, the companion backend and the
executors' Python workers all agree with the Spark 4.3.0 jars the build
compiles against (see ``build.sbt``).
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

# The one version of dlbridge (build.sbt reads the same line for the jar).
VERSION = re.search(r'^__version__ = "([^"]+)"$', Path(__file__).with_name("python").joinpath(
    "dlbridge", "_version.py").read_text(), re.M).group(1)

CONNECT_CLIENT = ["grpcio-status==1.85.3", "googleapis-common-protos==1.76.0", "zstandard==0.25.0"]

setup(
    name="dlbridge",
    version=VERSION,
    description="Deep-learning (TensorFlow 2 / Keras 3) stages for Spark ML in Scala, Java and PySpark",
    package_dir={"": "python"},
    packages=find_packages("python"),
    package_data={"dlbridge": ["jars/*.jar"]},
    python_requires=">=3.10,<3.13",
    install_requires=[
        "pyspark==4.3.0",
        "py4j==0.10.9.9",
        "pyarrow==26.0.1",
        "pandas==2.3.3",  # PySpark 4.3 warns that pandas 3 is not fully supported
        "numpy==2.4.6",
        "tensorflow-cpu==2.21.0",
        "keras==3.15.1",
        "cryptography==50.0.2",  # ephemeral TLS certificate of the parameter server (spark.ssl / network.crypto)
    ],
    extras_require={
        # a Spark Connect client (pyspark's own "connect" needs beyond the packages above)
        "connect": CONNECT_CLIENT,
        "test": ["pytest==9.2.0", "scikit-learn==1.9.1", *CONNECT_CLIENT,
                 "venv-pack==0.2.0",  # packs the wheel's virtualenv for spark.archives (test_package)
                 "tensorboard==2.21.0"],  # its EventAccumulator reads back the tensorboardDir event files
        # mlflow.spark / mlflow.keras / mlflow.pyfunc with a sqlite tracking store. mlflow-skinny, not
        # mlflow: the full package caps pyarrow below our pin. sqlalchemy + alembic run the sqlite store.
        "mlflow": ["mlflow-skinny==3.17.2", "sqlalchemy==2.0.58", "alembic==1.20.1"],
    },
)
