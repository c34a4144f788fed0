"""The budget of the prompt that runs now: a VRAMGuard's budget_gb governs the prompt it belongs to, wherever it
sits in that graph (the examples put it after the decode), and only that prompt. A prompt without one runs under
the default (the device's memory less a reserve), whatever an earlier prompt, of this client or another, set.

Read from the prompt's own graph when its first LTX-2 node runs, so the guard need not have run yet (nor run at
all: ComfyUI skips an output node whose inputs did not change)."""

from server import PromptServer

from ..memory.budget import BUDGET

GUARD = "VRAMGuard"


def guard_budget_gb(prompt: dict | None) -> float:
    """The smallest budget_gb a VRAMGuard of `prompt` gives as a value (0: none, the default). A budget given by
    a link is known only when the guard runs; it applies from then on, within the prompt."""
    sizes = []
    for node in (prompt or {}).values():
        if isinstance(node, dict) and node.get("class_type") == GUARD:
            value = (node.get("inputs") or {}).get("budget_gb")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf"):
                sizes.append(float(value))
    return min(sizes, default=0.0)


def running_prompt() -> tuple[str, dict | None]:
    """(id, graph) of the prompt the server runs now."""
    server = PromptServer.instance
    prompt_id = str(server.last_prompt_id)
    queue = server.prompt_queue
    running = (
        queue.get_current_queue_volatile()
        if hasattr(queue, "get_current_queue_volatile")
        else queue.get_current_queue()
    )[0]
    for item in running:
        if str(item[1]) == prompt_id:
            return prompt_id, item[2]
    return prompt_id, None


def apply_prompt_budget() -> None:
    """Sets the budget for the running prompt, once per prompt (a guard with a linked budget_gb sets it later)."""
    prompt_id, graph = running_prompt()
    BUDGET.begin_prompt(prompt_id, guard_budget_gb(graph))


def refine_follows() -> bool:
    """Whether the running prompt has a refine stage (an A2VSampler whose stage is refine): the base stage then
    keeps its transformer for it in cold_start instead of freeing it for stage 2 to read the checkpoint again."""
    _, graph = running_prompt()
    return any(
        isinstance(node, dict)
        and node.get("class_type") == "A2VSampler"
        and (node.get("inputs") or {}).get("stage") == "refine"
        for node in (graph or {}).values()
    )
