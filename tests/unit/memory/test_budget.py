"""The budget on its own (plain modules stand in for components): cold_start holds nothing after use,
persistent keeps what fits and evicts idle components to make room (most recently used first: runs repeat one
order), a component over the budget is streamed when it can be and refused by name when it cannot, a negative
budget is refused, the run report records each stage, the state is read safely while another thread uses the
budget."""

import sys
import threading
from dataclasses import dataclass

import pytest
import torch

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.memory.budget import VramBudget
from ltx2_a2v.memory.records import Built, ComponentRequest, Need
from ltx2_a2v.memory.streaming import split_units

CPU = torch.device("cpu")


def linear(nbytes: int) -> torch.nn.Module:
    return torch.nn.Linear(1, nbytes // 4, bias=False)  # float32: 4 bytes per weight


@dataclass
class PlainRequest(ComponentRequest):
    """A plain module of `nbytes` standing in for a component; what it makes is appended to `builds`."""

    nbytes: int = 0
    builds: list | None = None
    needs: Need | None = None

    def need(self) -> Need:
        return self.needs or Need(self.nbytes)

    def build(self, streamed: list[str]) -> Built:
        if self.builds is not None:
            self.builds.append((self.label, list(streamed)))
        return Built(linear(self.nbytes), None, f"{self.label}: built")


def use(
    budget: VramBudget,
    name: str,
    nbytes: int,
    builds: list | None = None,
    need: Need | None = None,
    activations: int = 0,
    alive=None,
    group=None,
):
    return budget.use(PlainRequest((group, name), name, "none", CPU, activations, group, alive, nbytes, builds, need))


def test_cold_start_holds_nothing_after_use():
    budget = VramBudget()
    with use(budget, "transformer", 4096) as transformer:
        assert budget.resident_bytes() == 4096 and transformer is not None
    assert budget.resident_bytes() == 0 and not budget.records


def test_cold_start_keeps_a_handed_over_component_for_the_next_stage_only():
    """Kept past its stage when asked (stage 2 runs on stage 1's transformer), reused once, then freed; what a
    prompt kept for a stage it never ran is freed when the next prompt begins."""
    budget, builds = VramBudget(), []
    request = PlainRequest((None, "transformer"), "transformer", "none", CPU, 0, None, None, 4096, builds)
    request.hand_over = True
    with budget.use(request) as first:
        pass
    assert budget.resident_bytes() == 4096 and budget.state()["components"][0]["handed_over"]
    with use(budget, "transformer", 4096, builds) as again:
        assert again is first and len(builds) == 1  # not read again
    assert budget.resident_bytes() == 0  # used without hand_over: freed as cold_start frees
    budget.begin_prompt("one", 0)
    with budget.use(request):
        pass
    budget.begin_prompt("one", 0)  # the same prompt: kept
    assert budget.resident_bytes() == 4096
    budget.begin_prompt("two", 0)
    assert budget.resident_bytes() == 0 and not budget.records
    # Each node of a run begins it again (ComfyUI runs a stage per node): that keeps what the run handed over.
    budget.begin_run("run", "none", "cold_start")
    with budget.use(request):
        pass
    budget.begin_run("run", "none", "cold_start")
    assert budget.resident_bytes() == 4096
    budget.begin_run("next run", "none", "cold_start")
    assert budget.resident_bytes() == 0


def test_persistent_keeps_and_reuses_then_evicts_an_idle_component():
    budget, builds = VramBudget(), []
    budget.mode = "persistent"
    with use(budget, "transformer", 4096, builds) as first:
        pass
    with use(budget, "transformer", 4096, builds) as again:
        assert again is first and len(builds) == 1  # reused, not rebuilt
    budget.budget_bytes = 4096 + 1024
    with use(budget, "video_decoder", 2048, builds):
        names = [r.name for r in budget.records.values()]
    assert names == ["video_decoder"]  # the idle transformer made room


def test_a_component_over_the_budget_is_built_with_the_units_that_do_not_fit_streamed():
    budget, builds = VramBudget(), []
    budget.budget_bytes = 1200
    units = {f"transformer_blocks.{i}": 300 for i in range(4)}
    budget.begin_run("run", "none", "cold_start")
    # 100 other bytes + one 300-byte unit in flight (a CPU) + 200 bytes of activations leave 600: two units stay
    # resident, two are streamed.
    with use(budget, "transformer", 400, builds, need=Need(100, units), activations=200):
        pass
    assert builds == [("transformer", ["transformer_blocks.2", "transformer_blocks.3"])]
    assert budget.last_run.loads == ["transformer: built"]


def test_a_component_that_cannot_stream_and_does_not_fit_is_refused_with_its_reason():
    budget = VramBudget()
    budget.budget_bytes = 1000
    why = "quantization: block streaming supports none, fp8_cast, fp8_scaled, not torchao_int8_weight_only."
    with pytest.raises(LTX2InputError, match="not torchao_int8_weight_only"):
        with use(budget, "transformer", 4000, need=Need(4000, cannot_stream=why)):
            pass
    assert not budget.records


@pytest.mark.parametrize("gb", [-1.0, float("nan"), float("inf")])
def test_a_budget_that_is_not_a_size_is_refused_by_name(gb):
    with pytest.raises(LTX2InputError, match=f"budget_gb: {gb} is not a size"):
        VramBudget().set_budget_gb(gb)


def test_run_report_records_stages_with_time_and_peak():
    budget = VramBudget()
    budget.begin_run("run-1", "fp8_scaled", "cold_start", "compute transformer float32")
    with budget.phase("stage 1 denoise", CPU):
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB held during the stage
        del block
    (stage,) = budget.last_run.as_dict()["phases"]
    # The ledger counts the tensors themselves: exactly the block's bytes above what was live before.
    assert stage["name"] == "stage 1 denoise" and stage["peak_bytes"] - stage["start_bytes"] == 64 * 2**20
    assert budget.last_run.as_dict()["precision"] == "compute transformer float32"
    assert "stage 1 denoise" in budget.last_run.text()


def test_split_keeps_the_units_that_fit_with_one_in_flight():
    # The 22B transformer in fp8_scaled (docs/memory.md's arithmetic): 48 blocks of 370 MiB, 815 MiB of others.
    units = [f"transformer_blocks.{i}" for i in range(48)]
    sizes = dict.fromkeys(units, 370)
    resident, streamed = split_units(units, sizes, 815, room=14 * 1024)  # VRAMGuard budget_gb 14 (24 GB GPUs)
    assert resident == units[:35] and streamed == units[35:]  # 815 + 35 x 370 + 370 in flight <= 14336 MiB
    assert split_units(units, sizes, 815, room=1000) == ([], units)


def test_persistent_over_budget_keeps_some_big_components_across_runs():
    """A run uses its components in the same order each time (text encoder, stage-1 transformer, VAE and upsampler,
    stage-2 transformer, decoder). When they do not all fit, least-recently-used eviction would throw out exactly
    the one needed next and rebuild all three big ones every run; the budget must keep some of them instead.
    Sizes are the 22B model's in GiB (arithmetic, see docs/memory.md), as KiB here: a budget of 46 for 48.9."""
    sizes = {
        "text_encoder": 12.7,
        "embeddings_processor": 1.0,
        "audio_encoder": 0.1,
        "video_encoder": 0.5,
        "transformer": 18.1,
        "spatial_upsampler": 0.5,
        "transformer (stage 2)": 18.1,
        "video_decoder": 0.8,
    }
    run = [
        "text_encoder",
        "embeddings_processor",
        "audio_encoder",
        "video_encoder",
        "transformer",
        "video_encoder",
        "spatial_upsampler",
        "video_encoder",
        "transformer (stage 2)",
        "video_decoder",
    ]
    budget = VramBudget()
    budget.mode = "persistent"
    budget.budget_bytes = 46 * 1024
    builds = []
    big = {"text_encoder", "transformer", "transformer (stage 2)"}
    per_run = []
    for _ in range(6):
        before = len(builds)
        for name in run:
            with use(budget, name, int(sizes[name] * 1024) // 4 * 4, builds):
                pass
            assert budget.resident_bytes() <= budget.budget_bytes
        per_run.append(sum(1 for name, _ in builds[before:] if name in big))
    # Three big components cycling through room for two: at best one is rebuilt at every other stage, 1.5 a run
    # on average. Least-recently-used eviction rebuilt all three on every run: [3, 3, 3, 3, 3, 3].
    assert per_run[0] == 3
    assert all(n <= 2 for n in per_run[1:]) and sum(per_run[1:]) <= 1.5 * len(per_run[1:]), per_run


def test_a_kept_component_whose_files_changed_is_dropped_never_served():
    budget, builds, files = VramBudget(), [], {"same": True}
    budget.mode = "persistent"
    with use(budget, "transformer", 4096, builds, alive=lambda: files["same"]) as first:
        pass
    files["same"] = False  # the checkpoint was replaced: the budget's next act drops what was built from it
    with use(budget, "video_decoder", 1024, builds):
        assert [r.name for r in budget.records.values()] == ["video_decoder"]
    files["same"] = True
    with use(budget, "transformer", 4096, builds, alive=lambda: files["same"]) as again:
        assert again is not first and [name for name, _ in builds].count("transformer") == 2


def test_room_is_made_from_another_checkpoints_components_first():
    """Two checkpoints' sets under a budget for one: the other set goes, least recently used first, before any of
    the set being used; otherwise the two would evict each other's components at every stage and never settle."""
    budget, builds = VramBudget(), []
    budget.mode = "persistent"
    budget.budget_bytes = 3 * 1024
    for name in ("text_encoder", "transformer", "video_decoder"):
        with use(budget, name, 1024, builds, group="a.safetensors"):
            pass
    with use(budget, "text_encoder", 1024, builds, group="b.safetensors"):
        pass
    # a's text encoder, used longest ago, made room; a's others stay while b's set grows.
    assert [(r.group, r.name) for r in budget.records.values()] == [
        ("a.safetensors", "transformer"),
        ("a.safetensors", "video_decoder"),
        ("b.safetensors", "text_encoder"),
    ]
    for name in ("transformer", "video_decoder", "text_encoder", "transformer", "video_decoder"):
        with use(budget, name, 1024, builds, group="b.safetensors"):
            pass
    assert {r.group for r in budget.records.values()} == {"b.safetensors"}
    assert len(builds) == 6  # b's three were built once each, then served


def test_a_stage_whose_activations_cannot_fit_the_device_is_refused_before_any_build():
    budget, builds = VramBudget(), []
    too_much = budget.capacity(CPU) + 1
    with pytest.raises(LTX2InputError, match="^transformer: this stage needs about .* GiB beside the weights"):
        with use(budget, "transformer", 4096, builds, activations=too_much):
            pass
    assert not builds and not budget.records


def test_the_state_is_read_whole_from_another_thread_while_a_run_adds_and_drops_components():
    """GET /ltx2/vram reads the state on the server's thread while the prompt's thread changes the records."""
    budget, errors, done = VramBudget(), [], threading.Event()
    budget.mode = "persistent"
    budget.begin_run("run", "none", "persistent")

    def read() -> None:
        while not done.is_set():
            try:
                state = budget.state()
                assert state["resident_bytes"] == sum(c["bytes"] for c in state["components"] if c["resident"])
            except Exception as error:  # noqa: BLE001 - any failure of a read is the finding
                errors.append(error)
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can: a read meets the records mid-change
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(1000):
            with use(budget, f"component {i}", 64):
                pass
            if i % 100 == 99:
                budget.free_all()
    finally:
        done.set()
        reader.join()
        sys.setswitchinterval(interval)
    assert not errors, errors[0]
