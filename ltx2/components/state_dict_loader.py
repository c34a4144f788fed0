"""ltx-core's state-dict loader protocol, streaming: each tensor is read, renamed by the component's key ops,
changed by the pack's per-tensor transform (LoRA fusion, quantization, dtype), then kept.

ltx-core's own loader reads the file through a memory map and keeps what it read mapped until the end; this one
keeps only the transformed tensors, so quantizing while loading never holds the bf16 model. The headers come
parsed from the component's plan (plan.py): a build reads each file's header once.
"""

from collections.abc import Callable

import torch
from ltx_core.loader import SDOps
from ltx_core.loader.primitives import StateDict

from ...memory.accounting import give_back_freed_memory, storage_bytes
from ..files.safetensors_file import SafetensorsHeader, iter_tensors

# (key, tensor) -> the (key, tensor) pairs to keep. Runs after the component's key ops.
TensorTransform = Callable[[str, torch.Tensor], list[tuple[str, torch.Tensor]]]


class StreamingStateDictLoader:
    def __init__(
        self,
        headers: dict[str, SafetensorsHeader],
        config: dict,
        transform: TensorTransform | None = None,
        on_tensor: Callable[[str], None] | None = None,
        only_keys: set[str] | None = None,
    ):
        self.headers = headers  # path -> parsed header, for every file the component reads
        self._config = config
        self.transform = transform
        self.on_tensor = on_tensor  # progress / interrupt hook, called once per tensor read
        self.only_keys = only_keys  # file keys to read; None = every key the key ops accept

    def metadata(self, path: str) -> dict:  # noqa: ARG002 - ltx-core's protocol; the config is the plan's
        return self._config

    def load(self, path: str | list[str], sd_ops: SDOps | None = None, device: torch.device | None = None) -> StateDict:
        device = device or torch.device("cpu")
        sd, size, dtypes = {}, 0, set()
        for shard in [path] if isinstance(path, str) else path:
            header = self.headers[str(shard)]
            names = {k: (k if sd_ops is None else sd_ops.apply_to_key(k)) for k in header.entries}
            wanted = {
                k for k, name in names.items() if name is not None and (self.only_keys is None or k in self.only_keys)
            }
            for key, tensor in iter_tensors(header, wanted):
                if self.on_tensor is not None:
                    self.on_tensor(key)
                for kept_name, kept in self._transformed(names[key], tensor, sd_ops):
                    sd[kept_name] = kept.to(device)
                    size += storage_bytes(sd[kept_name])
                    dtypes.add(kept.dtype)
                # Drop this tensor before the next one is read: otherwise two of them are in flight at once.
                tensor = kept = None
                give_back_freed_memory()
        return StateDict(sd=sd, device=device, size=size, dtype=dtypes)

    def _transformed(self, name: str, tensor: torch.Tensor, sd_ops: SDOps | None) -> list[tuple[str, torch.Tensor]]:
        pairs = [(name, tensor)] if sd_ops is None else sd_ops.apply_to_key_value(name, tensor)
        if self.transform is None:
            return pairs
        return [kept for new_name, value in pairs for kept in self.transform(new_name, value)]
