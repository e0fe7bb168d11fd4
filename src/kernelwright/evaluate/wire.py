"""Messages between the parent and its workers: a JSON header, then opaque blobs.

Why not plain pickle: unpickling runs code, and the candidate's worker runs
code we do not trust. So the parent reads only JSON from workers and passes
tensor blobs along without opening them; the reference worker opens the
candidate's output blobs with `load_tensors`, which admits only the classes
and functions that torch uses to share tensors between processes. Tensors
travel as shared memory (CUDA IPC handles, or file descriptors on the CPU),
never as copies of their data.
"""

from __future__ import annotations

import io
import json
import pickle
from multiprocessing.connection import Connection
from typing import Any


def send(conn: Connection, message: dict[str, Any], blobs: list[bytes] = ()) -> None:
    header = dict(message, blobs=len(blobs))
    conn.send_bytes(json.dumps(header).encode())
    for blob in blobs:
        conn.send_bytes(blob)


def recv(conn: Connection) -> tuple[dict[str, Any], list[bytes]]:
    header = json.loads(conn.recv_bytes())
    blobs = [conn.recv_bytes() for _ in range(header.pop("blobs", 0))]
    return header, blobs


def dump_tensors(obj: Any) -> bytes:
    """Pickle tensors (or tuples/lists/dicts of them) for another process, sharing their memory.

    A blob can be loaded once: on the CPU each tensor travels as a file descriptor that the
    receiver takes from this process, after which a second load fails (EOFError). To send the
    same tensors again, to another process, dump them again.
    """
    import torch.multiprocessing  # noqa: F401  (registers torch's sharing reductions)
    from multiprocessing.reduction import ForkingPickler

    return bytes(ForkingPickler.dumps(obj))


# Everything a pickled, shared tensor may refer to. Anything else in a blob is
# refused, so a blob can build tensors and containers of them and nothing more.
_ALLOWED = {
    "torch.multiprocessing.reductions": {
        "rebuild_tensor", "rebuild_cuda_tensor", "rebuild_typed_storage",
        "rebuild_storage_fd", "rebuild_storage_empty",
    },
    "torch.storage": {"UntypedStorage", "TypedStorage"},
    "torch": {"Tensor", "Size", "device"},
    "multiprocessing.resource_sharer": {"DupFd"},
    "collections": {"OrderedDict"},
}


class UnsafeBlob(Exception):
    """A blob asked for something other than tensors."""


class _TensorUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        import torch

        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise UnsafeBlob(f"refused to load {module}.{name} from a worker's message")


def load_tensors(blob: bytes) -> Any:
    """Unpickle a blob made by `dump_tensors`, refusing anything but tensors and containers."""
    import torch.multiprocessing  # noqa: F401

    obj = _TensorUnpickler(io.BytesIO(blob)).load()
    _check_only_tensors(obj)
    return obj


def _check_only_tensors(obj: Any) -> None:
    import torch

    if isinstance(obj, (tuple, list)):
        for item in obj:
            _check_only_tensors(item)
    elif isinstance(obj, dict):
        for value in obj.values():
            _check_only_tensors(value)
    elif not (obj is None or type(obj) is torch.Tensor or isinstance(obj, (int, float, bool, str))):
        raise UnsafeBlob(f"a worker sent a {type(obj).__name__} where tensors were expected")
