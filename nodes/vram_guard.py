"""VRAMGuard: sits between nodes to order the freeing of memory and reports what the pack holds.

For now a pass-through that reports the model it is given; the budget manager gives it its actions.
"""

from comfy_api.latest import io

ACTIONS = ("enforce", "free_ltx2", "free_all")


class VRAMGuard(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRAMGuard",
            display_name="VRAM Guard (LTX-2)",
            category="LTX-2",
            is_output_node=True,
            inputs=[
                io.Float.Input("budget_gb", default=0.0, min=0.0, max=1024.0, step=0.5,
                               tooltip="0 = what the device has, less a reserve"),
                io.Combo.Input("action", options=list(ACTIONS), default="enforce"),
                io.AnyType.Input("passthrough", optional=True),
            ],
            outputs=[io.AnyType.Output(display_name="passthrough"), io.String.Output(display_name="report")],
        )

    @classmethod
    def execute(cls, budget_gb, action, passthrough=None) -> io.NodeOutput:
        held = passthrough.describe() if hasattr(passthrough, "describe") else type(passthrough).__name__
        report = f"budget {budget_gb:g} GB, action {action}; passing through: {held}"
        return io.NodeOutput(passthrough, report, ui={"text": [report]})
