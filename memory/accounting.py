"""Counting the bytes tensors hold, and giving freed memory back: what every part of the pack measures with."""

import ctypes
import gc
import weakref

import torch

GIB = 2**30


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


def module_bytes(module: torch.nn.Module) -> int:
    return tensors_bytes((*module.parameters(), *module.buffers()))


def _load_malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_MALLOC_TRIM = _load_malloc_trim()


def give_back_freed_memory() -> None:
    """Return the memory of tensors just dropped to the system.

    glibc serves allocations below its (self-raising, up to 32 MB) mmap threshold from its heaps, and a freed
    block between kept ones stays counted in the process's memory. Streaming a model frees a bf16 tensor after
    keeping its quantized copy, over and over: without this the freed holes add up to a third of the model
    (measured on the wide preset). malloc_trim hands free heap pages back without changing any setting."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def empty_cache(device: torch.device) -> None:
    """Give a device's freed memory back: CUDA's caching allocator and its pinned host blocks (torch keeps freed
    page-locked memory cached for reuse, where block streaming's stores would pile up across builds), or the C
    heap on a CPU."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch._C._host_emptyCache()
    else:
        give_back_freed_memory()


def device_total_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    import psutil

    return psutil.virtual_memory().total


def watch(module: torch.nn.Module | None) -> list[weakref.ref]:
    return [weakref.ref(t) for t in module.parameters()] if module is not None else []


def collect_if_alive(tensors: list[weakref.ref]) -> None:
    """A dropped component's tensors must be gone before the next one is built (the device holds both otherwise).
    Dropping the last reference frees them at once, unless part of the model sits in a reference cycle, which
    only the garbage collector frees: after a forward that records hidden states, transformers (4.5x,
    `check_model_inputs`) puts each Gemma decoder layer's original forward back as an attribute of the layer, a
    bound method of the layer itself, so every layer holds itself. Collected then, and only then: a full collection
    in a ComfyUI process takes a while."""
    if any(t() is not None for t in tensors):
        gc.collect()
