"""The run report: what one prompt's run did, phase by phase (text encode, stage 1 denoise, ..., decode: its timed
parts; "stage" is base or refine only): seconds, the device-memory ledger's peak
(memory/ledger.py), the components used and built; and the budget's part that keeps it and shows its state."""

import contextlib
import time
from dataclasses import dataclass, field

import torch

from .accounting import GIB
from .kept_outputs import ENCODED_PROMPTS
from .ledger import PhaseMeter, device_figures


@dataclass
class PhaseRecord:
    name: str
    seconds: float
    peak_bytes: int
    peak_reserved_bytes: int = 0  # allocated plus the allocator's cache (CUDA); the same as peak_bytes on a CPU
    # {name, bytes, streamed, bytes_read} of each component it used; bytes_read: from files by its build, 0 if kept
    components: list[dict] = field(default_factory=list)
    start_bytes: int = 0  # the ledger when the phase began: what was already live (kept components, latents)


@dataclass
class RunReport:
    run_id: str
    policy: str = ""
    mode: str = ""
    precision: str = ""  # the compute dtypes the run used
    phases: list[PhaseRecord] = field(default_factory=list)
    components: list[str] = field(default_factory=list)  # what the run used, in order ("transformer, streamed")
    loads: list[str] = field(default_factory=list)  # one line per component built: policy, layers, notes
    notes: list[str] = field(default_factory=list)  # what the user should know about the inputs (a prompt cut)
    resident_after: int = 0
    bytes_read: int = 0  # from model files, by the components' builds (memory/reads.py)

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "policy": self.policy,
            "mode": self.mode,
            "precision": self.precision,
            "elapsed_seconds": round(sum(p.seconds for p in self.phases), 3),
            "peak_bytes": max((p.peak_bytes for p in self.phases), default=0),
            "peak_reserved_bytes": max((p.peak_reserved_bytes for p in self.phases), default=0),
            "resident_bytes_after": self.resident_after,
            "bytes_read": self.bytes_read,
            "components": list(self.components),
            "loads": list(self.loads),
            "notes": list(self.notes),
            "phases": [
                {
                    "name": p.name,
                    "seconds": round(p.seconds, 3),
                    "peak_bytes": p.peak_bytes,
                    "peak_reserved_bytes": p.peak_reserved_bytes,
                    "start_bytes": p.start_bytes,
                    "components": list(p.components),
                }
                for p in self.phases
            ],
        }

    def text(self) -> str:
        d = self.as_dict()
        lines = [
            (
                f"LTX-2 run: {d['elapsed_seconds']:.1f} s, peak {d['peak_bytes'] / GIB:.2f} GiB, "
                f"{d['resident_bytes_after'] / GIB:.2f} GiB resident after, {self.bytes_read / GIB:.2f} GiB read "
                f"({self.mode}, {self.policy})"
            ),
            f"  {self.precision}",
        ]
        lines += [
            (
                f"  {s['name']:<22s} {s['seconds']:7.2f} s  peak {s['peak_bytes'] / GIB:6.2f} GiB  read "
                f"{sum(c.get('bytes_read', 0) for c in s['components']) / GIB:6.2f} GiB"
            )
            for s in d["phases"]
        ]
        lines += [f"  built {line}" for line in self.loads]
        lines += [f"  note: {line}" for line in self.notes]
        return "\n".join(lines)


class RunKeeping:
    """The budget's part that keeps the run report and shows its state (a base of VramBudget: memory/budget.py)."""

    @contextlib.contextmanager
    def phase(self, name: str, device: torch.device):
        """A phase of a run (a timed part: text encode, stage 1 denoise, ...), with its peak memory, for the report."""
        start = time.perf_counter()
        self._phase_components = []
        with PhaseMeter(device) as meter:
            self.running = (name, start, meter)
            try:
                yield
            finally:
                self.running = None
        if self.last_run is not None:
            self.last_run.phases.append(
                PhaseRecord(
                    name,
                    time.perf_counter() - start,
                    meter.peak,
                    meter.peak_reserved,
                    self._phase_components,
                    meter.start,
                )
            )
            self.last_run.resident_after = self.resident_bytes()

    def state(self) -> dict:
        """What the page and GET /ltx2/vram show. Read on the server's thread while the prompt's thread changes the
        records: under the budget's lock, which is never held while a component is made (that takes long)."""
        with self._lock:
            return {
                "budget_bytes": self.budget_for(self.device) if self.device is not None else self.budget_bytes,
                "mode": self.mode,
                "components": [
                    {
                        "name": r.label,
                        "bytes": r.nbytes,
                        "streamed_bytes": r.total_bytes - r.nbytes,
                        "device": str(r.device),
                        "resident": r.module is not None,
                        "policy": r.policy,
                        "in_use": r.in_use > 0,
                        "handed_over": r.handed_over,
                    }
                    for r in self.records.values()
                ],
                "resident_bytes": self.resident_bytes(),
                "kept_prompts": ENCODED_PROMPTS.state(),  # on the CPU, beside the budget
                "device_memory": device_figures(self.device) if self.device is not None else None,
                "last_run": self.last_run.as_dict() if self.last_run else None,
                "phase": self._running_state(),
            }

    def _running_state(self) -> dict | None:
        """The phase running now, for the page: its name, seconds so far and peak so far."""
        running = self.running
        if running is None:
            return None
        name, start, meter = running
        return {"name": name, "seconds": round(time.perf_counter() - start, 3), "peak_bytes": meter.so_far()}
