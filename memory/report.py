"""The run report: what one prompt's run did, stage by stage: seconds, the device-memory ledger's peak
(memory/ledger.py), the components used and built."""

from dataclasses import dataclass, field

from .accounting import GIB


@dataclass
class StageRecord:
    name: str
    seconds: float
    peak_bytes: int
    peak_reserved_bytes: int = 0  # allocated plus the allocator's cache (CUDA); the same as peak_bytes on a CPU
    # {name, bytes, streamed, bytes_read} of each component it used; bytes_read: from files by its build, 0 if kept
    components: list[dict] = field(default_factory=list)
    start_bytes: int = 0  # the ledger when the stage began: what was already live (kept components, latents)


@dataclass
class RunReport:
    run_id: str
    policy: str = ""
    mode: str = ""
    precision: str = ""  # the compute dtypes the run used
    stages: list[StageRecord] = field(default_factory=list)
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
            "elapsed_seconds": round(sum(p.seconds for p in self.stages), 3),
            "peak_bytes": max((p.peak_bytes for p in self.stages), default=0),
            "peak_reserved_bytes": max((p.peak_reserved_bytes for p in self.stages), default=0),
            "resident_bytes_after": self.resident_after,
            "bytes_read": self.bytes_read,
            "components": list(self.components),
            "loads": list(self.loads),
            "notes": list(self.notes),
            "stages": [
                {
                    "name": p.name,
                    "seconds": round(p.seconds, 3),
                    "peak_bytes": p.peak_bytes,
                    "peak_reserved_bytes": p.peak_reserved_bytes,
                    "start_bytes": p.start_bytes,
                    "components": list(p.components),
                }
                for p in self.stages
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
            for s in d["stages"]
        ]
        lines += [f"  built {line}" for line in self.loads]
        lines += [f"  note: {line}" for line in self.notes]
        return "\n".join(lines)
