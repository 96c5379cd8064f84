"""Feature rows the JVM hands over in shared memory, read in place.

When dlbridge's own UDF operator runs the Keras UDF (``KerasModel.transform``),
the packed float32 rows of each Arrow batch do not travel in the batch: the JVM
writes them into a slot of a file in ``/dev/shm`` that it maps (its
``FeatureRing``), and the batch's first value is a header naming the file and
the slot; the other values are empty. This module maps the file and returns the
slot's rows as a float32 array over that memory, 64-byte aligned and writeable,
which TensorFlow takes without a copy (``tensor_input.float32_tensor``). The
JVM reuses a slot only after it has read the results of the batch in it.

A header is told apart from packed rows by its length (2 more than a multiple of
4; packed rows are 4 bytes a value), its magic string, and the empty values
after it. Before it reads anything, this module checks that the file is a
regular file of this user, readable by no one else, named as the JVM names
them, and that its first bytes hold the same secret as the header.
"""
from __future__ import annotations

import mmap
import os
import stat
import struct

import numpy as np
import pyarrow as pa

#: The JVM's ``FeatureRing``: the magic string that starts the header and the file.
MAGIC = b"DLBRING1"
#: The header's fixed part: magic (8), secret (16), slot offset (int64), row bytes (int32), path length (int16).
_FIXED = struct.Struct("<8s16sqiH")
#: Where the JVM makes the files, and how their names start.
DIRECTORY = "/dev/shm"
PREFIX = "dlbridge-ring-"

#: The file mapped by this process, by path: at most one, since a PySpark worker runs one task at a
#: time and a task's operator uses one file. The mapping of a task's file (deleted by the JVM once
#: the first batch is answered) is closed when the next task's file is mapped, or when the process ends.
_maps: dict[str, tuple[mmap.mmap, bytes]] = {}


def shared_rows(col: pa.Array, offsets: np.ndarray, lengths: np.ndarray) -> tuple[int, np.ndarray] | None:
    """The bytes per row and the rows (a flat uint8 array) of a batch whose rows are in shared memory.

    ``offsets`` and ``lengths`` are the binary column's value offsets and lengths.
    Returns None when the batch holds its rows itself.
    """
    rows = len(col)
    first = int(lengths[0]) if rows else 0
    if first < _FIXED.size or first % 4 != 2 or lengths[1:].any():
        return None
    data = col.buffers()[2]
    header = memoryview(data)[int(offsets[0]):int(offsets[0]) + first]
    if header[:len(MAGIC)] != MAGIC:
        return None
    _, secret, slot_offset, row_bytes, path_length = _FIXED.unpack_from(header)
    path = bytes(header[_FIXED.size:_FIXED.size + path_length]).decode("utf-8")
    memory = _mapping(path, secret)
    end = slot_offset + rows * row_bytes
    if slot_offset < 0 or row_bytes <= 0 or end > len(memory):
        raise ValueError(f"A batch's header names bytes {slot_offset}-{end} of {path}, which holds {len(memory)}. "
                         "The JVM and this Python worker disagree on the shared memory's layout; set "
                         "spark.dlbridge.inference.sharedMemory.enabled=false and report it.")
    return row_bytes, np.frombuffer(memory, np.uint8, rows * row_bytes, slot_offset)


def _mapping(path: str, secret: bytes) -> mmap.mmap:
    known = _maps.get(path)
    if known is not None and known[1] == secret:
        return known[0]
    _close_all()  # the file of an earlier task, or the same file with another secret
    if os.path.dirname(path) != DIRECTORY or not os.path.basename(path).startswith(PREFIX):
        raise ValueError(f"A batch names {path!r} as its shared memory, which is not a file dlbridge's JVM makes "
                         f"({DIRECTORY}/{PREFIX}*).")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeError(f"The JVM handed this batch's features over in shared memory at {path}, which this "
                           f"Python worker cannot open ({e}). Fix: set spark.dlbridge.inference.sharedMemory.enabled="
                           "false to send them in the Arrow batches.") from e
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise ValueError(f"{path} is not a regular file of this user readable by no one else "
                             f"(mode {stat.filemode(info.st_mode)}, uid {info.st_uid}); it is not read.")
        memory = mmap.mmap(fd, info.st_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    if memory[:len(MAGIC) + len(secret)] != MAGIC + secret:
        memory.close()
        raise ValueError(f"{path} does not hold the secret of the batch that names it; it is not read.")
    _maps[path] = (memory, secret)
    return memory


def _close_all() -> None:
    for memory, _ in _maps.values():
        try:
            memory.close()
        except BufferError:  # an array still views it: unmapped when the last one goes
            pass
    _maps.clear()
