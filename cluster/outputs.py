"""A job's output files, stored by job id: `<results>/<job id>/<node id>-<n><ext>` plus `report.json`.

The names depend only on the job and the workflow, never on ComfyUI's own counters, so a redelivered job writes the
same names again: it overwrites, it never adds a second copy. Each file is written under a temporary name and
renamed, so a reader never sees half a file. Every name is recorded in the folder's `.written` before the file is
made, so the run that finishes the job removes what an earlier attempt wrote and this one did not (a killed run's
half-written files) and nothing else: a file the folder held before, or one some other program put there, stays.

Every path written is proven inside the job's folder after resolving: the job id and node ids are checked tokens
(checks.py), the folder must resolve to a direct child of the results folder (no link planted in its place), and
each name is a plain file name, created without following links (O_EXCL) and renamed over the old one (a link in
its place is replaced, not followed).
"""

import json
import os
import re
from pathlib import Path

from .checks import NODE_ID, checked_job_id
from .errors import JobRefused

PARTIAL = ".partial"
MANIFEST = ".written"
SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


def output_refs(history: dict) -> list[tuple[str, dict]]:
    """(node id, file reference) for every file the prompt saved, in node order: SaveVideo and SaveImage list them
    under `images`, SaveAudio under `audio`, some nodes under `gifs` or `videos`."""
    refs = []
    for node_id in sorted(history.get("outputs", {}), key=lambda n: (len(n), n)):
        output = history["outputs"][node_id]
        for key in ("images", "gifs", "videos", "audio"):
            refs += [(node_id, ref) for ref in output.get(key, []) if ref.get("type", "output") == "output"]
    return refs


def replace_atomically(partial: Path, path: Path, data: bytes) -> None:
    partial.unlink(missing_ok=True)  # a dead run of the same pid; unlink removes a link, never its target
    with open(partial, "xb") as file:  # O_EXCL: never through a link
        file.write(data)
    os.replace(partial, path)


class JobFolder:
    def __init__(self, results_dir: Path, job_id: str):
        root = Path(results_dir).resolve(strict=True)
        path = root / checked_job_id(job_id)
        path.mkdir(exist_ok=True)
        self.path = path.resolve(strict=True)
        if self.path.parent != root:
            raise JobRefused(f"job {job_id!r}: its folder {path} resolves to {self.path}, outside {root}")

    def inside(self, name: str) -> Path:
        """The folder's entry `name`, proven to be a plain name in the folder."""
        path = self.path / name
        if name in ("", ".", "..") or "/" in name or "\0" in name or path.parent.resolve() != self.path:
            raise JobRefused(f"{name!r}: not a file name inside the job's folder {self.path}")
        return path

    def output_name(self, node_id: str, index: int, filename: str) -> str:
        if not NODE_ID.fullmatch(node_id):
            raise JobRefused(f"node id {node_id!r}: not a token (letters, digits, '_', '-', '.', ':'); no file written")
        suffix = Path(filename).suffix
        return f"{node_id}-{index}{suffix if SUFFIX.fullmatch(suffix) else ''}"

    def write(self, name: str, data: bytes) -> Path:
        path = self.inside(name)
        partial = self.inside(f"{name}.{os.getpid()}{PARTIAL}")
        self._record(name, partial.name)
        replace_atomically(partial, path, data)
        return path

    def write_output(self, node_id: str, index: int, filename: str, data: bytes) -> Path:
        return self.write(self.output_name(node_id, index, filename), data)

    def write_report(self, report: dict) -> Path:
        return self.write("report.json", json.dumps(report, indent=1, default=str).encode())

    def _record(self, *names: str) -> None:
        with open(self.inside(MANIFEST), "a") as manifest:
            manifest.write("".join(f"{name}\n" for name in names))
            manifest.flush()
            os.fsync(manifest.fileno())

    def recorded(self) -> list[str]:
        manifest = self.inside(MANIFEST)
        return manifest.read_text().splitlines() if manifest.is_file() else []

    def clear_leftovers(self, keep: set[Path]) -> None:
        """Removes the files an earlier attempt of this job recorded and this run did not write; then records only
        this run's. A recorded name that is not a plain file name in the folder is skipped, never followed."""
        kept = {path.name for path in keep}
        for name in set(self.recorded()) - kept:
            try:
                path = self.inside(name)
            except JobRefused:
                continue
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
        manifest = self.inside(MANIFEST)
        partial = self.inside(f"{MANIFEST}.{os.getpid()}{PARTIAL}")
        replace_atomically(partial, manifest, "".join(f"{name}\n" for name in sorted(kept)).encode())
