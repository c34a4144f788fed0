"""The bytes of a job's input files, as the worker reads them from a checked message (checks.py).

Bytes sent with the job are decoded (strict base64). A path is read only under a folder the worker was started to
read (`--inputs-root`, repeatable; none by default, so a worker takes bytes only), only when it is a regular file
(a FIFO would block the worker for good, /dev/zero would read without end), and only up to the per-input limit.
The path is resolved first (links followed), so a link under a root that points out of it is refused too.
"""

import base64
import binascii
import os
import stat
from pathlib import Path

from .checks import too_large
from .errors import JobFailed, JobRefused


def input_bytes(name: str, entry: dict, roots: tuple[Path, ...], max_bytes: int) -> bytes:
    if "data" in entry:
        try:
            data = base64.b64decode(entry["data"], validate=True)
        except binascii.Error as error:
            raise JobRefused(f"input {name!r}: its data is not base64 ({error}); send the file's bytes") from None
        if len(data) > max_bytes:
            raise too_large(name, len(data), max_bytes)
        return data
    return read_under_roots(name, Path(entry["path"]), roots, max_bytes)


def read_under_roots(name: str, path: Path, roots: tuple[Path, ...], max_bytes: int) -> bytes:
    if not roots:
        raise JobRefused(
            f"input {name!r} is sent as a path ({path}), and this worker reads no paths: send the file's bytes, "
            "or start the workers with --inputs-root FOLDER (shared storage) and put the file under it"
        )
    if not path.is_absolute():
        raise JobRefused(f"input {name!r}: path {path} is relative; give the absolute path on the shared storage")
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError) as error:
        raise JobFailed(
            f"input {name!r}: cannot read {path} on this worker ({getattr(error, 'strerror', error)}); put it on "
            "storage every worker mounts at the same path, or send its bytes with the job"
        ) from None
    if not any(resolved.is_relative_to(root) for root in roots):
        raise JobRefused(
            f"input {name!r}: {path} is outside the folders this worker reads inputs from "
            f"({', '.join(map(str, roots))}: its --inputs-root); put the file there or send its bytes"
        )
    # O_NONBLOCK: opening a FIFO for reading does not wait for a writer; its type is then refused below.
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:  # gone, or made a link, since it was resolved
        raise JobFailed(f"input {name!r}: cannot open {path} on this worker ({error.strerror})") from None
    try:
        info = os.fstat(fd)  # of what was opened, not of what the name pointed at a moment before
        if not stat.S_ISREG(info.st_mode):
            raise JobRefused(f"input {name!r}: {path} is not a regular file (a FIFO, device or folder); give a file")
        if info.st_size > max_bytes:
            raise too_large(name, info.st_size, max_bytes)
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(max_bytes + 1)  # the file may have grown since fstat
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise too_large(name, len(data), max_bytes)
    return data
