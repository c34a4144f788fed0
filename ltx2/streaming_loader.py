"""ltx-core's state-dict loader protocol, streaming: each tensor is read, renamed by the component's key ops,
changed by the pack's per-tensor transform (LoRA fusion, quantization, dtype), then kept.

ltx-core's own loader reads the file through a memory map and keeps what it read mapped until the end; ours
keeps only the transformed tensors, so quantizing while loading never holds the bf16 model.
"""

import ctypes
from collections.abc import Callable
from pathlib import Path

import torch
from ltx_core.loader import SDOps
from ltx_core.loader.primitives import StateDict

from .safetensors_file import SafetensorsHeader, iter_tensors, read_header, read_tensor

# (key, tensor) -> the (key, tensor) pairs to keep. Runs after the component's key ops.
TensorTransform = Callable[[str, torch.Tensor], list[tuple[str, torch.Tensor]]]


class StreamingStateDictLoader:
    def __init__(self, transform: TensorTransform | None = None, config: dict | None = None,
                 on_tensor: Callable[[str], None] | None = None, only_keys: set[str] | None = None):
        self.transform = transform
        self._config = config  # for files whose config lives beside them (the Gemma root)
        self.on_tensor = on_tensor  # progress / interrupt hook, called once per tensor read
        self.only_keys = only_keys  # file keys to read; None = every key the key ops accept

    def restricted_to(self, keys: set[str]) -> "StreamingStateDictLoader":
        return StreamingStateDictLoader(self.transform, self._config, self.on_tensor, only_keys=keys)

    def metadata(self, path: str) -> dict:
        return self._config if self._config is not None else read_header(path).config()

    def load(self, path: str | list[str], sd_ops: SDOps | None = None, device: torch.device | None = None) -> StateDict:
        device = device or torch.device("cpu")
        sd, size, dtypes = {}, 0, set()
        for shard in [path] if isinstance(path, str) else path:
            header = read_header(shard)
            names = {k: (k if sd_ops is None else sd_ops.apply_to_key(k)) for k in header.entries}
            wanted = {k for k, name in names.items() if name is not None and (self.only_keys is None or k in self.only_keys)}
            for key, tensor in iter_tensors(header, wanted):
                if self.on_tensor is not None:
                    self.on_tensor(key)
                for kept_name, kept in self._transformed(names[key], tensor, sd_ops):
                    sd[kept_name] = kept.to(device)
                    size += storage_bytes(sd[kept_name])
                    dtypes.add(kept.dtype)
                # Drop this tensor before the next one is read: otherwise two of them are in flight at once.
                tensor = kept = None
                _give_back_freed_memory()
        return StateDict(sd=sd, device=device, size=size, dtype=dtypes)


    def _transformed(self, name: str, tensor: torch.Tensor, sd_ops: SDOps | None) -> list[tuple[str, torch.Tensor]]:
        pairs = [(name, tensor)] if sd_ops is None else sd_ops.apply_to_key_value(name, tensor)
        if self.transform is None:
            return pairs
        return [kept for new_name, value in pairs for kept in self.transform(new_name, value)]


def _load_malloc_trim():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_MALLOC_TRIM = _load_malloc_trim()


def _give_back_freed_memory() -> None:
    """Return the memory of the tensor just dropped to the system.

    glibc serves allocations below its (self-raising, up to 32 MB) mmap threshold from its heaps, and a freed
    block between kept ones stays counted in the process's memory. Streaming a model frees a bf16 tensor after
    keeping its quantized copy, over and over: without this the freed holes add up to a third of the model
    (measured on the wide preset). malloc_trim hands free heap pages back without changing any setting."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def storage_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor really holds: torchao's tensor subclasses report the logical (bf16) size in nbytes, and a
    tensor on the meta device (a streamed block between uses) holds none."""
    if tensor.device.type == "meta":
        return 0
    if hasattr(tensor, "__tensor_flatten__"):
        names, _ = tensor.__tensor_flatten__()
        return sum(storage_bytes(getattr(tensor, n)) for n in names if isinstance(getattr(tensor, n), torch.Tensor))
    return tensor.nbytes


def tensors_bytes(tensors) -> int:
    """Bytes held by a set of tensors, each storage counted once (tied weights share one: Gemma's lm_head is
    its token embedding)."""
    seen, total = set(), 0
    for tensor in tensors:
        if not hasattr(tensor, "__tensor_flatten__") and tensor.device.type != "meta":
            pointer = tensor.untyped_storage().data_ptr()
            if pointer in seen:
                continue
            seen.add(pointer)
        total += storage_bytes(tensor)
    return total


class LoraFactors:
    """A LoRA file in ComfyUI's key names, read factor by factor when the weight it changes streams by."""

    def __init__(self, path: str | Path, strength: float):
        self.header: SafetensorsHeader = read_header(path)
        self.strength = strength
        self.targets = {}
        for key in self.header.entries:
            if key.endswith(".lora_A.weight"):
                module = key.removeprefix("diffusion_model.").removesuffix(".lora_A.weight")
                self.targets[module + ".weight"] = (key, key.replace(".lora_A.", ".lora_B."))

    def fuse(self, key: str, weight: torch.Tensor, rows_per_chunk: int = 1024) -> torch.Tensor:
        """weight + strength * B @ A, computed in float32 a slice of rows at a time (a whole float32 copy of the
        largest 22B linear would be 256 MB of transient memory), returned in the weight's dtype."""
        if key not in self.targets or self.strength == 0:
            return weight
        a_key, b_key = self.targets[key]
        a, b = read_tensor(self.header, a_key).float(), read_tensor(self.header, b_key).float() * self.strength
        fused = torch.empty_like(weight)
        for start in range(0, weight.shape[0], rows_per_chunk):
            rows = slice(start, start + rows_per_chunk)
            fused[rows] = (weight[rows].float() + b[rows] @ a).to(weight.dtype)
        return fused
