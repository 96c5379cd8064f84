"""Small files in a directory given as a local path or any Hadoop FS URI, written atomically.

A plain path (no ``scheme://``) is read and written with Python's own file
calls. A URI (``file://``, ``hdfs://``, ``s3a://``, ...) goes through the
Hadoop ``FileSystem`` of the driver's JVM, reached through the py4j gateway of
the SparkContext (a PySpark driver's, or the companion backend's of a JVM
application), with the application's Hadoop configuration.

Writes are atomic: the bytes go to a hidden temporary name in the same
directory (``.`` prefix, which Hadoop and Spark treat as hidden), then are
renamed to the final name, so a reader never sees a partial file.
"""
from __future__ import annotations

import os
import uuid
from typing import Any, Protocol
from urllib.parse import urlparse

TEMP_PREFIX = ".tmp-"


class Directory(Protocol):
    """The operations a checkpoint needs on one directory."""

    location: str

    def names(self) -> list[str]:
        """Names of the files in the directory (none when it does not exist)."""

    def read(self, name: str) -> bytes:
        """The bytes of the file ``name``."""

    def write_atomic(self, name: str, data: bytes) -> None:
        """Write ``data`` as ``name`` (creating the directory), replacing any such file at once."""

    def delete(self, name: str) -> None:
        """Remove the file ``name`` if it exists."""


def directory(location: str, spark: Any = None) -> Directory:
    """The directory ``location``: a local path, or a Hadoop FS URI reached through ``spark``'s JVM.

    Raises
    ------
    ValueError
        If ``location`` is a URI and there is no SparkSession whose JVM could open it.
    """
    if not urlparse(location).scheme:
        return LocalDirectory(location)
    if spark is None:
        raise ValueError(f"Directory {location!r} is a Hadoop FS URI; reaching it needs the SparkSession of the "
                         "driver. Fix: pass a local path, or call from a driver with a SparkSession.")
    return HadoopDirectory(location, spark.sparkContext)


class LocalDirectory:
    """A directory of the local file system, through Python's file calls."""

    def __init__(self, location: str) -> None:
        self.location = location

    def names(self) -> list[str]:
        """See :class:`Directory`."""
        try:
            return os.listdir(self.location)
        except FileNotFoundError:
            return []

    def read(self, name: str) -> bytes:
        """See :class:`Directory`."""
        with open(os.path.join(self.location, name), "rb") as f:
            return f.read()

    def write_atomic(self, name: str, data: bytes) -> None:
        """See :class:`Directory` (``os.replace`` of a flushed, fsynced temporary file)."""
        os.makedirs(self.location, exist_ok=True)
        temp = os.path.join(self.location, f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}")
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, os.path.join(self.location, name))
        finally:
            if os.path.exists(temp):
                os.remove(temp)

    def delete(self, name: str) -> None:
        """See :class:`Directory`."""
        try:
            os.remove(os.path.join(self.location, name))
        except FileNotFoundError:
            pass


class HadoopDirectory:
    """A directory of any Hadoop file system, through the driver JVM's ``FileSystem`` API."""

    def __init__(self, location: str, sc: Any) -> None:
        self.location = location
        self._jvm = sc._jvm
        self._root = self._jvm.org.apache.hadoop.fs.Path(location)
        self._fs = self._root.getFileSystem(sc._jsc.hadoopConfiguration())

    def _path(self, name: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(self._root, name)

    def names(self) -> list[str]:
        """See :class:`Directory`."""
        if not self._fs.exists(self._root):
            return []
        return [status.getPath().getName() for status in self._fs.listStatus(self._root)]

    def read(self, name: str) -> bytes:
        """See :class:`Directory`."""
        stream = self._fs.open(self._path(name))
        try:
            return bytes(stream.readAllBytes())
        finally:
            stream.close()

    def write_atomic(self, name: str, data: bytes) -> None:
        """See :class:`Directory` (``FileSystem.rename`` of a closed temporary file)."""
        self._fs.mkdirs(self._root)
        temp, final = self._path(f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"), self._path(name)
        try:
            stream = self._fs.create(temp, True)
            try:
                stream.write(bytearray(data))
            finally:
                stream.close()
            self._fs.delete(final, False)  # Hadoop's rename does not replace an existing file
            if not self._fs.rename(temp, final):
                raise OSError(f"Could not rename {temp.toString()} to {final.toString()} in {self.location!r}.")
        finally:
            self._fs.delete(temp, False)

    def delete(self, name: str) -> None:
        """See :class:`Directory`."""
        self._fs.delete(self._path(name), False)
