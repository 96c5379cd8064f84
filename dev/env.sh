# Sourced by dev/ scripts: the environment every build, test and example uses.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DLBRIDGE_HOME="$root"
export SPARK_HOME=$("$root/.venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
# The project's Spark runs (demo, examples, tests) log warnings and errors only (dev/conf/log4j2.properties).
export SPARK_CONF_DIR="$root/dev/conf"
# The driver backend and the executors' Python workers use the project's interpreter.
export PYSPARK_PYTHON="$root/.venv/bin/python"
export PYSPARK_DRIVER_PYTHON="$root/.venv/bin/python"
export PATH="$root/.venv/bin:$PATH"
# This checkout's sources win over any other installed copy (e.g. a second git worktree's editable install).
export PYTHONPATH="$root/python${PYTHONPATH:+:$PYTHONPATH}"
# The one version of dlbridge (setup.py and build.sbt read the same line).
export DLBRIDGE_VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/python/dlbridge/_version.py")
