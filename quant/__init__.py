"""Quantization policies for the LTX-2 components: policy data in one registry, one backend module per family.

A leaf of the pack: it imports torch, ltx-core and (in its torchao backend) torchao, never the rest of the pack
but its errors."""

from .policy import Policy, PolicyUnavailable
from .registry import POLICIES, backend_for, check_policy, get_policy, policy_names, recommend_policy

__all__ = ["POLICIES", "Policy", "PolicyUnavailable", "backend_for", "check_policy", "get_policy", "policy_names",
           "recommend_policy"]
