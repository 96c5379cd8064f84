"""Caching of the trainer's input under names the JVM knows, so that a failed fit releases it.

The trainer caches its repartitioned input (:func:`persist`) and releases it in
its own ``finally``. When the fit runs for a JVM stage, that ``finally`` never
runs if the backend process dies mid-fit, so the JVM's ``KerasEstimator.fit``
passes a name and, inside :func:`named_views`, every cached frame is also
registered as the temp view ``<name>_0``, ``<name>_1``, ... (in order) in the
frame's own session. The JVM drops those views when the fit ends, however it
ends, and dropping a temp view uncaches it.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

_scope = threading.local()


@contextlib.contextmanager
def named_views(name: str | None) -> Iterator[None]:
    """Within this block (on this thread), :func:`persist` registers what it caches under ``name``.

    Parameters
    ----------
    name : str or None
        Prefix of the temp views; ``None`` registers none (the frames are only cached).
    """
    previous = getattr(_scope, "name", None), getattr(_scope, "count", 0)
    _scope.name, _scope.count = name, 0
    try:
        yield
    finally:
        _scope.name, _scope.count = previous


def persist(frame: Any) -> Any:
    """Cache ``frame`` with ``MEMORY_AND_DISK``, registered as the next named view inside :func:`named_views`."""
    from pyspark import StorageLevel

    name = getattr(_scope, "name", None)
    if name:
        frame.createOrReplaceTempView(f"{name}_{_scope.count}")
        _scope.count += 1
    return frame.persist(StorageLevel.MEMORY_AND_DISK)
