"""Quantization policies for the LTX-2 components, one registry looked up by name."""

from .registry import POLICIES, Policy, get_policy, policy_names

__all__ = ["POLICIES", "Policy", "get_policy", "policy_names"]
