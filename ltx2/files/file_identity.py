"""Telling a file from its replacement, cheaply: what a kept component or a cached loader output was built from.

Size and modification time are not enough: `cp -p` and `rsync -t` keep the time, and a same-size checkpoint of
the same model has the same header. The inode change time (ctime) cannot be set by a user and changes with every
write, and the inode and device change when a file is replaced by another; all five come from one stat call.

`identity` holds the path too (what ComfyUI's cache of a node's output is keyed by: a name). `file_key` does not:
a hard link, a symlink or a second name of one file is the same file, and a component built from it is kept once
(a name in the key kept one checkpoint three times under three names)."""

import os
from pathlib import Path


def identity(path: str | Path) -> tuple:
    """(path, device, inode, size, mtime, ctime), or (path, None) for a file that is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return (str(path), None)
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def identities(paths) -> tuple:
    return tuple([identity(p) for p in paths])


def file_key(path: str | Path) -> tuple:
    """(device, inode, size, mtime, ctime) of the file `path` names (links followed), or (path, None) for one that
    is not there."""
    found = identity(path)
    return found[1:] if found[1] is not None else found


def file_keys(paths) -> tuple:
    return tuple([file_key(p) for p in paths])
