"""What a device can give the pack, and what a stage needs on it beside the weights: the budget's arithmetic.

Capacity comes from the device as it is now, not from its size: on a GPU, `torch.cuda.mem_get_info`'s free bytes
plus what this process's caching allocator holds (the pack's components and the host's models, which the host can
free), less the host's reserve. What the CUDA context, a desktop or another process holds is neither, so it is
never planned for.

A stage needs, beside its components' resident weights: its activations (ltx2/components/activations.py's estimates) and
the largest compute-dtype copy of a weight (`upcast_bytes`), the streamed units in flight wherever streaming runs (two
on a GPU: the one computing and the next being copied), and a stated margin for what no estimate covers yet.
"""

import torch

from .accounting import GIB, device_total_bytes

MIB = 2**20

# Kept free for the host program and whatever else shares the device, without a host to say how much (the
# ComfyUI bridge takes ComfyUI's own reserve, --reserve-vram).
DEFAULT_RESERVE = {"cuda": 1 * GIB, "cpu": 4 * GIB}

# Beside a stage's estimated activations on a GPU: cuBLAS's and cuBLASLt's workspaces (up to 32 MiB per stream and
# handle on Hopper), attention's softmax statistics (heads x tokens x 4 bytes: a few MiB), the fp8 matmul's chunk of
# quantized activations (quant/fp8_scaled.py: at most QUANT_CHUNK_BYTES and its output) and the caching allocator's
# rounding of blocks. 512 MiB, stated, until a GPU calibrates it (bench/proving_ground.py measures the peaks). On a
# CPU every working tensor is in the ledger's estimates.
WORKSPACE_MARGIN = {"cuda": 512 * MIB}


def workspace_margin(device: torch.device) -> int:
    return WORKSPACE_MARGIN.get(device.type, 0)


def device_free(device: torch.device) -> int:
    """What the device has free now: CUDA's free memory (what no process holds); a CPU's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import psutil

    return psutil.virtual_memory().available


def device_capacity(device: torch.device, reserve: int) -> int:
    """What the device can give this process at most, less `reserve`: on a GPU what is free now plus what this
    process's allocator holds; on a CPU its memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - reserve
    return device_total_bytes(device) - reserve
