"""The model state of a registered estimator: what ``fit`` returns and its model is saved as.

A state is a ``dict`` of string keys to values of three kinds, each stored as
one file, never pickled:

* numpy arrays (and numpy scalars) -> ``<key>.npy`` (``np.save``/``np.load``
  with ``allow_pickle=False``, so object arrays are refused);
* ``bytes`` -> ``<key>`` when the key already ends in a file extension
  (``"model.keras"``), else ``<key>.bin``;
* JSON values (dict, list, str, int, float, bool, None; finite numbers only) ->
  ``<key>.json``.

:func:`encode` turns a state into ``{file name: bytes}``, the form that crosses
the bridge as a ``java.util.Map<String, byte[]>``, that the JVM saves under the
model's ``data/`` directory and that reaches the executors by broadcast;
:func:`decode` turns it back.

>>> import numpy as np
>>> files = encode({"w": np.arange(3.0), "meta": {"k": 2}, "model.keras": b"PK"}, "doc")
>>> sorted(files)
['meta.json', 'model.keras', 'w.npy']
>>> state = decode(files)
>>> state["w"].tolist(), state["meta"], state["model.keras"]
([0.0, 1.0, 2.0], {'k': 2}, b'PK')
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from typing import Any, Dict, Mapping

import numpy as np

__all__ = ["encode", "decode", "digest"]

# A key becomes a file name: no path separators, no leading dot.
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}$")


def encode(state: Any, what: str) -> Dict[str, bytes]:
    """The state as ``{file name: bytes}``.

    Parameters
    ----------
    state : dict
        What a fit function returned.
    what : str
        Names the fit function in errors, e.g. ``"Python estimator 'centroids' (fit)"``.

    Raises
    ------
    TypeError
        If ``state`` is not a dict of the three kinds above; the message names
        ``what``, the key and what it held.
    ValueError
        For a key that cannot be a file name, two keys that map to one file, or
        a JSON value holding NaN or infinity.
    """
    if not isinstance(state, dict):
        raise TypeError(f"{what} must return the model state: a dict of str keys to numpy arrays, bytes or "
                        f"JSON values. It returned {_describe(state)}. Fix: return e.g. "
                        "{'weights': np.array(...), 'meta': {...}}.")
    files: Dict[str, bytes] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(f"{what} returned a state with key {key!r}: keys must be strings of letters, "
                             "digits, '_', '.' or '-' (they become file names). Fix: rename the key.")
        name, data = _encode_value(key, value, what)
        if name in files:
            raise ValueError(f"{what} returned a state whose keys map to the same file '{name}'. Fix: rename one.")
        files[name] = data
    return files


def _encode_value(key: str, value: Any, what: str) -> tuple[str, bytes]:
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"{what} returned state['{key}'], a numpy array of Python objects, which cannot be "
                            "saved without pickle. Fix: convert it to a numeric or string dtype.")
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return f"{key}.npy", buffer.getvalue()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (key if _EXTENSION.search(key) else f"{key}.bin"), bytes(value)
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError as e:
        raise ValueError(f"{what} returned state['{key}'] with a NaN or infinite number ({e}); JSON holds finite "
                         "numbers only. Fix: store it in a numpy array.") from None
    except TypeError:
        raise TypeError(f"{what} returned state['{key}'] = {_describe(value)}, which is not a numpy array, bytes or "
                        "a JSON value. Fix: convert it (e.g. np.asarray(...), or model bytes).") from None
    return f"{key}.json", text.encode("utf-8")


def decode(files: Mapping[str, bytes]) -> Dict[str, Any]:
    """The state of ``{file name: bytes}`` (``.npy`` loaded without pickle, ``.json`` parsed, ``.bin`` stripped)."""
    state: Dict[str, Any] = {}
    for name, data in files.items():
        data = bytes(data)
        if name.endswith(".npy"):
            state[name[:-4]] = np.load(io.BytesIO(data), allow_pickle=False)
        elif name.endswith(".json"):
            state[name[:-5]] = json.loads(data.decode("utf-8"))
        elif name.endswith(".bin"):
            state[name[:-4]] = data
        else:
            state[name] = data
    return state


def digest(files: Mapping[str, bytes]) -> str:
    """A sha256 over the file names and contents: the state's identity in caches."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode("utf-8") + b"\0" + str(len(files[name])).encode() + b"\0")
        h.update(bytes(files[name]))
    return h.hexdigest()


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"

