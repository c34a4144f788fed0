"""The words the node library's search finds a node by, beside its name (io.Schema's `search_aliases`).

ComfyUI added `search_aliases` to the V3 schema after 0.3.75 (0.33 has it; 0.3.75's `io.Schema` refuses the
keyword), so the schemas pass it through `search_aliases(...)`: on a ComfyUI without the field the nodes register
without aliases, and a search finds them by name and category only.
"""

import dataclasses

from comfy_api.latest import io

# Every node of the pack, whatever it does: the model's names as users type them, and what the pack is for (each
# node is a part of the audio-to-video graph, so a search for the task lists all of them).
COMMON = (
    "ltx",
    "ltx-2",
    "ltx2",
    "ltx-2.3",
    "ltxv",
    "lip sync",
    "lipsync",
    "talking",
    "talking head",
    "audio to video",
    "a2v",
)
SUPPORTED = any(f.name == "search_aliases" for f in dataclasses.fields(io.Schema))


def search_aliases(*words: str) -> dict:
    """`{"search_aliases": [...]}` for io.Schema(**...), the pack's common words first; `{}` where this ComfyUI's
    schema has no such field."""
    return {"search_aliases": list(dict.fromkeys(COMMON + words))} if SUPPORTED else {}
