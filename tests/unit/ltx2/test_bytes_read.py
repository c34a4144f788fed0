"""Bytes read per run, per component: what a build reads from its files (each tensor it takes, once), 0 for a
component served as kept, and the run's total is their sum."""

import pytest
import torch

from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.ltx2.components.plan import ComponentPlan
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
from ltx2_a2v.memory.budget import BUDGET

CPU = torch.device("cpu")
NAMES = ("video_decoder", "transformer")


@pytest.fixture()
def bundle(tiny_paths) -> Bundle:
    yield Bundle(checkpoint=tiny_paths["checkpoint"], text_encoder=tiny_paths["text_encoder"])
    BUDGET.free_all()
    BUDGET.mode = "cold_start"


def use_each(model: ModelSpec, run_id: str) -> dict:
    BUDGET.begin_run(run_id, model.quantization, model.residency)
    for name in NAMES:
        with BUDGET.phase(name, CPU), model.component(name, CPU):
            pass
    return BUDGET.last_run.as_dict()


def tensor_bytes(bundle: Bundle, name: str) -> int:
    """The bytes of the file tensors the component is built from, from its plan."""
    plan = ComponentPlan.read(bundle, name)
    headers = plan.builder.model_loader.headers.values()
    return sum(h.entries[k].nbytes for h in headers for k in set(plan.renames) if k in h.entries)


def test_a_cold_start_run_reads_each_components_tensors_once_and_a_kept_one_reads_nothing(bundle):
    config = read_checkpoint_config(bundle.checkpoint)
    cold = use_each(ModelSpec(bundle, config), "reads-cold")
    read = {c["name"]: c["bytes_read"] for s in cold["phases"] for c in s["components"]}
    assert read == {name: tensor_bytes(bundle, name) for name in NAMES}
    assert all(n > 0 for n in read.values()) and cold["bytes_read"] == sum(read.values())

    kept = ModelSpec(bundle, config, residency="persistent")
    assert use_each(kept, "reads-first")["bytes_read"] == cold["bytes_read"]
    again = use_each(kept, "reads-again")
    assert again["bytes_read"] == 0
    assert all(c["bytes_read"] == 0 for s in again["phases"] for c in s["components"])
    assert "GiB read" in BUDGET.last_run.text()
