"""A job's output files, stored by job id: `<results>/<job id>/<node id>-<n><ext>` plus `report.json`.

The names depend only on the job and the workflow, never on ComfyUI's own counters, so a redelivered job writes the
same names again: it overwrites, it never adds a second copy. Each file is written under a temporary name and
renamed, so a reader never sees half a file, and what a killed worker left half-written is removed by the run
that finishes the job.
"""

import json
import os
from pathlib import Path

PARTIAL = ".partial"


def output_refs(history: dict) -> list[tuple[str, dict]]:
    """(node id, file reference) for every file the prompt saved, in node order: SaveVideo and SaveImage list them
    under `images`, SaveAudio under `audio`, some nodes under `gifs` or `videos`."""
    refs = []
    for node_id in sorted(history.get("outputs", {}), key=lambda n: (len(n), n)):
        output = history["outputs"][node_id]
        for key in ("images", "gifs", "videos", "audio"):
            refs += [(node_id, ref) for ref in output.get(key, []) if ref.get("type", "output") == "output"]
    return refs


def write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}{PARTIAL}")
    partial.write_bytes(data)
    os.replace(partial, path)


class JobFolder:
    def __init__(self, results_dir: Path, job_id: str):
        self.path = Path(results_dir) / job_id
        self.path.mkdir(parents=True, exist_ok=True)

    def output_name(self, node_id: str, index: int, filename: str) -> Path:
        return self.path / f"{node_id}-{index}{Path(filename).suffix}"

    def write(self, node_id: str, index: int, filename: str, data: bytes) -> Path:
        path = self.output_name(node_id, index, filename)
        write_atomically(path, data)
        return path

    def write_report(self, report: dict) -> Path:
        path = self.path / "report.json"
        write_atomically(path, json.dumps(report, indent=1, default=str).encode())
        return path

    def clear_leftovers(self, keep: set[Path]) -> None:
        """Removes half-written files of an earlier delivery, and files it wrote that this run did not."""
        for path in self.path.iterdir():
            if path not in keep:
                path.unlink(missing_ok=True)
