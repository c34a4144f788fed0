"""VRAMGuard: sets the pack's memory budget, frees on demand, and reports the last run.

It passes any value through, so it can sit between two nodes to order when the freeing happens. Its budget
governs the whole prompt it belongs to, wherever it sits, and no other prompt (prompt_budget.py).
"""

from comfy_api.latest import io

from ..ltx2.a2v.limits import check_numbers
from .prompt_budget import apply_prompt_budget
from .routes import publish
from .search_aliases import search_aliases

ACTIONS = ("enforce", "free_ltx2", "free_all")
LIMITS = {"budget_gb": (0.0, 1024.0, "0 (the device's memory less a reserve), or 14 on a 24 GB card")}


class VRAMGuard(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRAMGuard",
            display_name="VRAM Guard (LTX-2)",
            category="utilities",
            description="Sets the LTX-2 nodes' VRAM budget and frees memory (enforce, free_ltx2, free_all); shows "
            "the last run's time and peak.",
            **search_aliases("vram", "memory", "free memory", "unload", "unload models", "oom", "budget"),
            is_output_node=True,
            inputs=[
                io.Float.Input(
                    "budget_gb",
                    default=0.0,
                    min=LIMITS["budget_gb"][0],
                    max=LIMITS["budget_gb"][1],
                    step=0.5,
                    tooltip="0 = what the device has, less a reserve",
                ),
                io.Combo.Input("action", options=list(ACTIONS), default="enforce"),
                io.AnyType.Input("passthrough", optional=True),
            ],
            outputs=[io.AnyType.Output(display_name="passthrough"), io.String.Output(display_name="report")],
        )

    @classmethod
    def validate_inputs(cls, budget_gb, action) -> bool | str:
        problem = check_numbers(LIMITS, budget_gb=budget_gb)
        if problem:
            return problem
        if action not in ACTIONS:
            return f"action: '{action}' is not one of {', '.join(ACTIONS)}."
        return True

    @classmethod
    def execute(cls, budget_gb, action, passthrough=None) -> io.NodeOutput:
        import comfy.model_management as mm

        from ..memory.accounting import GIB
        from ..memory.budget import BUDGET
        from ..memory.kept_outputs import ENCODED_PROMPTS

        # The prompt's budget: the smallest any of its guards gives as a value (prompt_budget.py); a budget_gb
        # that came by a link is known only now, and lowers it for the rest of this prompt.
        apply_prompt_budget()
        if budget_gb and (BUDGET.budget_bytes is None or budget_gb * GIB < BUDGET.budget_bytes):
            BUDGET.set_budget_gb(budget_gb)
        device = mm.get_torch_device()
        if action == "enforce":
            BUDGET.enforce(device)
        else:
            BUDGET.free_all()
            ENCODED_PROMPTS.clear()
            if action == "free_all":
                mm.unload_all_models()
                mm.soft_empty_cache()
        state = BUDGET.state()
        lines = [
            BUDGET.last_run.text() if BUDGET.last_run else "LTX-2: no run yet",
            f"budget {BUDGET.budget_for(device) / GIB:.2f} GiB ({'set' if budget_gb else 'device less reserve'}), "
            f"action {action}, {state['resident_bytes'] / GIB:.2f} GiB held by LTX-2 "
            f"({sum(c['resident'] for c in state['components'])} components, {state['mode']})",
        ]
        report = "\n".join(lines)
        publish()
        return io.NodeOutput(passthrough, report, ui={"text": [report]})
