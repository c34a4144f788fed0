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
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import LTX2InputError
from ...memory.reads import count_read
from . import bounded_json
from .config_ranges import check_ltx_config

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
# mxfp8's block scales, as ComfyUI writes them (safetensors 0.6 names the dtype), where this torch has it.
if hasattr(torch, "float8_e8m0fnu"):
    DTYPES["F8_E8M0"] = torch.float8_e8m0fnu
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


# Asked for with LTX2_DROP_PAGE_CACHE=1: tell the kernel the pages just read will not be read again, so a 43 GB
# read does not push other files out of the page cache. Off by default: the page cache is what makes the next
# cold_start run's reads fast when RAM allows. Read when a tensor is read: the environment as it is then counts.
def drop_page_cache() -> bool:
    return os.environ.get("LTX2_DROP_PAGE_CACHE") == "1"


# Bounds no model file of the pack's comes near, so that a hostile or damaged header costs little to refuse: the
# 22B checkpoint has about 4,600 tensors, its fp8 release about 7,300 with the scales (86 and 142 per block in
# the test bundle's layout, 48 blocks), in a header of about 1 MB; a Gemma shard or the LoRA fewer. The format's
# own limit is 100 MB of header.
MAX_HEADER_BYTES = 16 * 2**20
MAX_ENTRIES = 65_536
# Parsed headers by file identity (file_identity.py): a file is parsed once per version, however many builds,
# estimates and checks read it. Small: a header is its entries' names, shapes and offsets.
_CACHE_SIZE = 32
_cache: OrderedDict[tuple, "SafetensorsHeader"] = OrderedDict()
_cache_lock = threading.Lock()


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
    identity: tuple = ()  # the file's (device, inode, size, mtime, ctime) when parsed; () for parsed bytes

    def config(self) -> dict:
        if "config" not in self.metadata:
            return {}
        try:
            config = bounded_json.loads(self.metadata["config"])
        except bounded_json.TooDeep as exc:
            raise LTX2InputError(
                f"{self.path.name}: its 'config' metadata entry is {exc}, not an LTX-2 config "
                "(a few levels). The file is damaged or not an LTX-2 checkpoint; download it "
                "again."
            ) from None
        except json.JSONDecodeError as exc:
            raise LTX2InputError(f"{self.path.name}: its 'config' metadata entry is not valid JSON ({exc}).") from exc
        if isinstance(config, dict):
            check_ltx_config(config, self.path)  # sizes beyond every release, refused naming the file
        return config


def shown(value, limit: int = 80) -> str:
    """A value from a file, as a message may show it: quoted with escapes (no control characters reach the page)
    and cut to `limit` characters (a hostile key can be megabytes long)."""
    text = value if isinstance(value, str) else json.dumps(value)[: limit + 1]
    text = repr(text[: limit + 1])[1:-1]
    return f"'{text[:limit]}...'" if len(text) > limit else f"'{text}'"


def _bad(path: Path, what: str) -> LTX2InputError:
    return LTX2InputError(
        f"{path.name} is not a complete .safetensors file: {what}. It may be cut short or not a safetensors file at "
        "all; download it again."
    )


def parse_header(raw: bytes, file_size: int, path: Path) -> SafetensorsHeader:
    """Parses the bytes after the 8-byte length prefix; `file_size` bounds every tensor's data."""
    try:
        header = bounded_json.loads(raw.decode("utf-8"))
    except bounded_json.TooDeep as exc:
        raise _bad(path, f"its header is {exc} (a safetensors header has 3)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"its header is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad(path, "its metadata is not a map of strings")
    if len(header) > MAX_ENTRIES:
        raise _bad(path, f"its header lists {len(header)} tensors, more than any model file has ({MAX_ENTRIES})")
    data_start = 8 + len(raw)
    entries = {}
    for key, info in header.items():
        if not isinstance(info, dict):
            raise _bad(path, f"tensor {shown(key)} has no description")
        dtype_name = info.get("dtype")
        dtype = DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if dtype is None:
            raise _bad(path, f"tensor {shown(key)} has unknown dtype {shown(info.get('dtype'), 20)}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _bad(path, f"tensor {shown(key)} has a bad shape {shown(shape, 40)}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise _bad(path, f"tensor {shown(key)} has bad data offsets {shown(offsets, 40)}")
        nbytes = offsets[1] - offsets[0]
        if nbytes != math.prod(shape) * dtype.itemsize:
            raise _bad(
                path,
                f"tensor {shown(key)} holds {nbytes} bytes, its shape and dtype need "
                f"{math.prod(shape) * dtype.itemsize}",
            )
        if data_start + offsets[1] > file_size:
            raise _bad(
                path,
                f"tensor {shown(key)} ends at byte {data_start + offsets[1]}, past the end of the file ({file_size})",
            )
        entries[key] = TensorEntry(key, dtype, tuple(shape), data_start + offsets[0], nbytes)
    _check_contiguous(path, entries, data_start, file_size)
    return SafetensorsHeader(path, metadata, entries)


def _check_contiguous(path: Path, entries: dict[str, TensorEntry], data_start: int, file_size: int) -> None:
    """The format's rule: the tensors' data fills the file after the header exactly, each tensor's bytes its
    own. Overlapping tensors would share bytes (one write shows in two weights), and bytes no tensor describes
    are not a model's."""
    end, previous = data_start, None
    for entry in sorted(entries.values(), key=lambda e: (e.start, e.nbytes)):
        if entry.start < end:
            raise _bad(
                path, f"tensor {shown(entry.key)} overlaps tensor {shown(previous)} (their data offsets share bytes)"
            )
        if entry.start > end:
            after = f"after tensor {shown(previous)}" if previous else "before the first tensor"
            raise _bad(path, f"{entry.start - end} bytes {after} belong to no tensor")
        end, previous = entry.start + entry.nbytes, entry.key
    if end != file_size:
        raise _bad(path, f"{file_size - end} bytes after the last tensor belong to no tensor")


def open_regular(path: str | Path, input_name: str = "") -> tuple[int, os.stat_result]:
    """A read-only descriptor of `path` and its stat, if it is a regular file (a symlink to one is followed).

    Opened non-blocking, then checked: a FIFO named like a model file would block `open()` until something writes
    to it (ComfyUI's interrupt cannot reach a blocked open), and a device such as /dev/zero never ends. Reads on
    the descriptor block again once it is known to be a file."""
    where = f"{input_name}: " if input_name else ""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise LTX2InputError(
            f"{where}{path} cannot be opened ({exc.strerror}). Pick the file again, or check its permissions."
        ) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = (
            "a folder"
            if stat.S_ISDIR(info.st_mode)
            else "a pipe (FIFO)"
            if stat.S_ISFIFO(info.st_mode)
            else "a device"
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "a socket"
            if stat.S_ISSOCK(info.st_mode)
            else "not a file"
        )
        raise LTX2InputError(f"{where}{path} is {kind}, not a regular file. Put the model file itself there.")
    os.set_blocking(fd, True)
    return fd, info


def _identity(info: os.stat_result) -> tuple:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def read_header(path: str | Path, input_name: str = "") -> SafetensorsHeader:
    """The file's parsed header; parsed once per version of the file (see _cache). Errors name `input_name`."""
    try:
        return _read_header(Path(path), input_name)
    except LTX2InputError as exc:
        if input_name and not str(exc).startswith(f"{input_name}: "):
            raise LTX2InputError(f"{input_name}: {exc}") from None
        raise


def _read_header(path: Path, input_name: str) -> SafetensorsHeader:
    fd, info = open_regular(path, input_name)
    with os.fdopen(fd, "rb") as f:
        key = (str(path), *_identity(info))
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
        size = info.st_size
        try:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise _bad(path, "it is shorter than the 8-byte header length")
            header_len = int.from_bytes(prefix, "little")
            # The length is the file's first 8 bytes: in a file that is not safetensors they are its text, so the
            # number is never shown.
            if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
                raise _bad(
                    path,
                    f"its first 8 bytes do not give a header length that fits the file ({size} bytes) "
                    f"and the format (at most {MAX_HEADER_BYTES // 2**20} MiB)",
                )
            raw = f.read(header_len)
        except OSError as exc:
            raise LTX2InputError(f"{path}: cannot be read ({exc.strerror}).") from exc
    header = parse_header(raw, size, path)
    header = SafetensorsHeader(header.path, header.metadata, header.entries, _identity(info))
    with _cache_lock:
        _cache[key] = header
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return header


def iter_tensors(header: SafetensorsHeader, keys: set[str] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Yields (key, tensor on the CPU) in file order; each tensor owns its memory (no mapping of the file)."""
    chosen = [e for e in header.entries.values() if keys is None or e.key in keys]
    fd, info = open_regular(header.path)
    if header.identity and _identity(info) != header.identity:
        os.close(fd)
        raise LTX2InputError(f"{header.path} was replaced or changed since its header was read. Run the prompt again.")
    with os.fdopen(fd, "rb", buffering=0) as f:
        for entry in sorted(chosen, key=lambda e: e.start):
            buffer = torch.empty(entry.nbytes, dtype=torch.uint8)
            f.seek(entry.start)
            view = memoryview(buffer.numpy())
            read = 0
            while read < entry.nbytes:
                n = f.readinto(view[read:])
                if not n:
                    raise _bad(header.path, f"tensor {shown(entry.key)} is cut short")
                read += n
            count_read(entry.nbytes)
            yield entry.key, buffer.view(entry.dtype).reshape(entry.shape)
            # Release this buffer before the next is allocated (the caller may already have dropped it).
            del buffer, view
            if drop_page_cache() and hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f.fileno(), entry.start, entry.nbytes, os.POSIX_FADV_DONTNEED)


def read_tensor(header: SafetensorsHeader, key: str) -> torch.Tensor:
    """One tensor by key (for LoRA factors, read on demand beside the weight they change)."""
    return next(iter_tensors(header, {key}))[1]
