"""Quantization policies for the LTX-2 components: policy data in one registry, one backend class per family.

The stored formats a file may hold are one table of rows (formats.py), which the file readers and the as_stored
backend ask. A leaf of the pack: it imports torch, ltx-core, comfy-kitchen (where a packed format is read) and (in
its torchao backend, when used) torchao, never the rest of the pack but its errors."""

from .policy import Backend, ComputeDtypeUnavailable, Policy, PolicyUnavailable
from .registry import POLICIES, check_policy, get_policy, policy_names

__all__ = [
    "POLICIES",
    "Backend",
    "ComputeDtypeUnavailable",
    "Policy",
    "PolicyUnavailable",
    "check_policy",
    "get_policy",
    "policy_names",
]
