"""Reading .safetensors files one tensor at a time, with plain reads.

safetensors' own reader memory-maps the whole file: every page it touches stays mapped (and counted in the
process's resident memory) until the file is closed. For a 43 GB checkpoint quantized while it loads, that
makes the load's peak the size of the file, not of the quantized model. Here each tensor is read into its own
buffer, handed on, and forgotten, so the peak is the kept (quantized) tensors plus one tensor in flight.

The header is parsed here too, with every field checked, so that a damaged or foreign file gets a clear error
naming it instead of a crash.
"""

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import LTX2InputError

DTYPES = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
# Asked for with LTX2_DROP_PAGE_CACHE=1: tell the kernel the pages just read will not be read again, so a 43 GB
# read does not push other files out of the page cache. Off by default: the page cache is what makes the next
# cold_start run's reads fast when RAM allows.
DROP_PAGE_CACHE = os.environ.get("LTX2_DROP_PAGE_CACHE") == "1"
# A header larger than this is not a model header (the format's own limit is 100 MB).
MAX_HEADER_BYTES = 100 * 2**20


@dataclass(frozen=True)
class TensorEntry:
    key: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute offset in the file
    nbytes: int


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    metadata: dict[str, str]
    entries: dict[str, TensorEntry]

    def config(self) -> dict:
        if "config" not in self.metadata:
            return {}
        try:
            return json.loads(self.metadata["config"])
        except json.JSONDecodeError as exc:
            raise LTX2InputError(f"{self.path.name}: its 'config' metadata entry is not valid JSON ({exc}).") from exc


def _bad(path: Path, what: str) -> LTX2InputError:
    return LTX2InputError(
        f"{path.name} is not a complete .safetensors file: {what}. It may be cut short or not a safetensors file at "
        "all; download it again."
    )


def parse_header(raw: bytes, file_size: int, path: Path) -> SafetensorsHeader:
    """Parses the bytes after the 8-byte length prefix; `file_size` bounds every tensor's data."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"its header is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad(path, "its metadata is not a map of strings")
    data_start = 8 + len(raw)
    entries = {}
    for key, info in header.items():
        if not isinstance(info, dict):
            raise _bad(path, f"tensor '{key}' has no description")
        dtype_name = info.get("dtype")
        dtype = DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if dtype is None:
            raise _bad(path, f"tensor '{key}' has unknown dtype {info.get('dtype')!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise _bad(path, f"tensor '{key}' has a bad shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise _bad(path, f"tensor '{key}' has bad data offsets {offsets!r}")
        nbytes = offsets[1] - offsets[0]
        if nbytes != math.prod(shape) * dtype.itemsize:
            raise _bad(path, f"tensor '{key}' holds {nbytes} bytes, its shape and dtype need {math.prod(shape) * dtype.itemsize}")
        if data_start + offsets[1] > file_size:
            raise _bad(path, f"tensor '{key}' ends at byte {data_start + offsets[1]}, past the end of the file ({file_size})")
        entries[key] = TensorEntry(key, dtype, tuple(shape), data_start + offsets[0], nbytes)
    return SafetensorsHeader(path, metadata, entries)


def read_header(path: str | Path) -> SafetensorsHeader:
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise _bad(path, "it is shorter than the 8-byte header length")
            header_len = int.from_bytes(prefix, "little")
            if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
                raise _bad(path, f"its header claims {header_len} bytes, the file has {size}")
            raw = f.read(header_len)
    except OSError as exc:
        raise LTX2InputError(f"{path}: cannot be read ({exc.strerror}).") from exc
    return parse_header(raw, size, path)


def iter_tensors(header: SafetensorsHeader, keys: set[str] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Yields (key, tensor on the CPU) in file order; each tensor owns its memory (no mapping of the file)."""
    chosen = [e for e in header.entries.values() if keys is None or e.key in keys]
    with open(header.path, "rb", buffering=0) as f:
        for entry in sorted(chosen, key=lambda e: e.start):
            buffer = torch.empty(entry.nbytes, dtype=torch.uint8)
            f.seek(entry.start)
            view = memoryview(buffer.numpy())
            read = 0
            while read < entry.nbytes:
                n = f.readinto(view[read:])
                if not n:
                    raise _bad(header.path, f"tensor '{entry.key}' is cut short")
                read += n
            yield entry.key, buffer.view(entry.dtype).reshape(entry.shape)
            # Release this buffer before the next is allocated (the caller may already have dropped it).
            del buffer, view
            if DROP_PAGE_CACHE and hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f.fileno(), entry.start, entry.nbytes, os.POSIX_FADV_DONTNEED)


def read_tensor(header: SafetensorsHeader, key: str) -> torch.Tensor:
    """One tensor by key (for LoRA factors, read on demand beside the weight they change)."""
    return next(iter_tensors(header, {key}))[1]
