"""The policy registry. A policy is data: a name, a version and what it does; unknown names list the valid ones."""

from dataclasses import dataclass

from ..ltx2.errors import LTX2InputError


@dataclass(frozen=True)
class Policy:
    name: str
    version: int
    description: str


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("none", 1, "bf16 as stored"),
    )
}


def policy_names() -> list[str]:
    return list(POLICIES)


def get_policy(name: str, input_name: str = "quantization") -> Policy:
    if name not in POLICIES:
        raise LTX2InputError(f"{input_name}: unknown policy '{name}'. Valid: {', '.join(POLICIES)}.")
    return POLICIES[name]
