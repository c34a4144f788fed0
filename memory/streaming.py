"""Block streaming: a transformer larger than the budget runs with the units that fit resident and the others
brought in one at a time.

A unit is one transformer block, or one of the big top-level layers (the AdaLN / timestep projections are
hundreds of MB at 22B widths). `split_units` keeps as many units resident as the room allows (less one
streamed unit in flight), so a transformer a little over the budget streams only a few blocks per forward, not
all 48. While the component is built, each unit's final tensors (LoRA fused, quantized) go to a store instead of
the model: pinned host memory when the compute device is a GPU, a spill file when it is the CPU (the CPU's
memory *is* the budget there, and the page cache that backs the file is not the process's memory). A forward
pre-hook brings the unit's tensors in, a forward hook sends them back to the meta device. Only plain-tensor
policies stream (the policies' `streamable`): torchao's tensor subclasses cannot be stored as bytes.
"""

import math
import os
import tempfile
from pathlib import Path

import torch

# Top-level layers smaller than this stay resident (norms, small tables): streaming them costs more than it saves.
MIN_UNIT_BYTES = 8 * 2**20


def streaming_units(model: torch.nn.Module) -> list[str]:
    """Module paths streamed one at a time: every transformer block and every large top-level child."""
    units = [f"transformer_blocks.{i}" for i in range(len(getattr(model, "transformer_blocks", [])))]
    for name, child in model.named_children():
        if name == "transformer_blocks":
            continue
        size = sum(math.prod(p.shape) * p.element_size() for p in child.parameters())
        if size >= MIN_UNIT_BYTES:
            units.append(name)
    return units


def unit_of(key: str, units: list[str]) -> str | None:
    return next((u for u in units if key.startswith(u + ".")), None)


def split_units(units: list[str], unit_bytes: dict[str, int], other_bytes: int, room: int) -> tuple[list[str], list[str]]:
    """(resident, streamed): units kept in memory, in model order, while they fit `room` together with the layers
    that are no unit and one streamed unit in flight; the rest streamed. Every byte moved per forward costs
    host-to-device bandwidth, so the more that stays resident the faster the stage."""
    in_flight = max(unit_bytes.get(u, 0) for u in units)
    free = room - other_bytes - in_flight
    resident = []
    for unit in units:
        if unit_bytes.get(unit, 0) <= free:
            resident.append(unit)
            free -= unit_bytes.get(unit, 0)
    return resident, [u for u in units if u not in resident]


class PinnedStore:
    """Units kept in page-locked host memory, copied to the GPU when used."""

    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}

    def put(self, key: str, tensor: torch.Tensor) -> None:
        self.tensors[key] = tensor.to("cpu").pin_memory()

    def get(self, key: str, device: torch.device) -> torch.Tensor:
        return self.tensors[key].to(device, non_blocking=True)

    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())


class SpillStore:
    """Units written once to a file in a private temp folder, read back when used; removed with the store."""

    def __init__(self, folder: str | None = None):
        self._dir = tempfile.TemporaryDirectory(prefix="ltx2-stream-", dir=folder)
        self.path = Path(self._dir.name) / "units.bin"
        self._file = open(self.path, "w+b")
        self.index: dict[str, tuple[int, torch.dtype, tuple[int, ...], int]] = {}

    def put(self, key: str, tensor: torch.Tensor) -> None:
        tensor = tensor.detach().contiguous().cpu()
        raw = tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        offset = self._file.seek(0, os.SEEK_END)
        self._file.write(raw)
        self.index[key] = (offset, tensor.dtype, tuple(tensor.shape), len(raw))

    def get(self, key: str, device: torch.device) -> torch.Tensor:
        offset, dtype, shape, nbytes = self.index[key]
        buffer = torch.empty(nbytes, dtype=torch.uint8)
        if nbytes:
            self._file.flush()
            view = memoryview(buffer.numpy())
            read = 0
            while read < nbytes:
                read += os.preadv(self._file.fileno(), [view[read:]], offset + read)
        return buffer.view(dtype).reshape(shape).to(device)

    def nbytes(self) -> int:
        return sum(entry[3] for entry in self.index.values())

    def close(self) -> None:
        self._file.close()
        self._dir.cleanup()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the folder goes with the temp dir anyway
            pass


def make_store(device: torch.device):
    return PinnedStore() if device.type == "cuda" else SpillStore()


def attach(model: torch.nn.Module, units: list[str], store, device: torch.device) -> None:
    """Hooks that bring each unit in before its forward and send it back to meta after."""

    for unit in units:
        module = model.get_submodule(unit)
        prefix = unit + "."
        keys = [k for k in store.index] if isinstance(store, SpillStore) else list(store.tensors)
        unit_keys = [k for k in keys if k.startswith(prefix)]

        def bring_in(mod, _args, unit_keys=unit_keys, prefix=prefix):
            state = {k[len(prefix):]: store.get(k, device) for k in unit_keys}
            mod.load_state_dict(state, strict=False, assign=True)

        def send_back(mod, _args, _output):
            for sub in mod.modules():
                for name, param in list(sub.named_parameters(recurse=False)):
                    sub.register_parameter(name, torch.nn.Parameter(torch.empty_like(param, device="meta"),
                                                                    requires_grad=False))

        # First in, last out: the compute-dtype hooks (ltx2/precision.py), attached when the model was built,
        # upcast what this brings in and put the stored tensors back before they are sent back.
        module.register_forward_pre_hook(bring_in, prepend=True)
        module.register_forward_hook(send_back)
    model._ltx2_stream_store = store  # lives and dies with the model
