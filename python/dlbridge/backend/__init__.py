"""The Python side of the driver that the JVM stages call (see DESIGN.md, "The bridge").

``python -m dlbridge.backend`` is the companion process a JVM application
starts; :func:`ensure_backend` registers the same backend inside a PySpark
driver instead.
"""
from dlbridge.backend.inprocess import ensure_backend

__all__ = ["ensure_backend"]
