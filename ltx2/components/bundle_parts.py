"""Whether a run's files hold every component, from their headers alone: a full LTX-2.3 checkpoint holds them all,
a transformer-only one (diffusion_models/) needs the split files for the rest (the component table's parts say which
file holds what). What is missing is named with the loader input that would give it, at queue time."""

from pathlib import Path

from ...errors import LTX2InputError
from ..files.checkpoint import check_lora, check_text_encoder
from ..files.safetensors_file import SafetensorsHeader, read_header, shown
from .table import COMPONENTS, SPLIT_FIELDS, Bundle

# What each split file holds, for messages, in the loader's order of its inputs.
HOLDS = {
    "video_vae": "the video VAE",
    "audio_vae": "the audio VAE and its vocoder",
    "text_projection": "the text projection",
}


def _has(header: SafetensorsHeader, prefix: str) -> bool:
    return any(key.startswith(prefix) for key in header.entries)


def _headers(bundle: Bundle) -> tuple[SafetensorsHeader, dict[str, SafetensorsHeader]]:
    if not bundle.checkpoint.exists():
        raise LTX2InputError(
            f"ckpt_name: {bundle.checkpoint} does not exist (deleted or moved?). Refresh the list and pick again."
        )
    checkpoint = read_header(bundle.checkpoint, "ckpt_name")
    split = {f: read_header(getattr(bundle, f), f) for f in SPLIT_FIELDS if getattr(bundle, f) is not None}
    return checkpoint, split


def missing_parts(bundle: Bundle, split_only: bool = False) -> list[str]:
    """Every problem with where the components' tensors come from, as messages naming the input to fix.
    `split_only` (the queue-time check): only the parts an LTX-2 transformer file lacks that split files would give;
    a file that is no LTX-2 checkpoint at all, or a damaged one, is for the node to refuse when it runs."""
    checkpoint, split = _headers(bundle)
    lacking: dict[str, list[str]] = {}  # the input that would give them -> checkpoint prefixes missing
    wrong: dict[str, list[str]] = {}  # a split input that does not hold its part -> the prefixes it lacks
    for component in COMPONENTS.values():
        if component.file != "checkpoint":
            continue
        for need in component.needs:
            part = next((p for p in component.parts if need.startswith(p.prefix)), None)
            if part is not None and part.field in split:
                stored = part.stored_as + need[len(part.prefix) :]
                if not _has(split[part.field], stored):
                    wrong.setdefault(part.field, []).append(stored)
            elif not _has(checkpoint, need):
                lacking.setdefault(part.field if part else "ckpt_name", []).append(need)
    name = bundle.checkpoint.name
    every = ", ".join(dict.fromkeys(p for prefixes in lacking.values() for p in prefixes))
    if "ckpt_name" in lacking or "config" not in checkpoint.metadata:
        if split_only:
            return []
        return [
            f"ckpt_name: {name} is not an LTX-2 audio-video checkpoint (no {every or 'config'} entries). Pick an "
            "LTX-2 / LTX-2.3 release checkpoint, or a transformer-only file of one."
        ]
    if split_only and not isinstance(checkpoint.config().get("transformer"), dict):
        return []
    problems = []
    if lacking:
        order = sorted(lacking, key=list(HOLDS).index)  # as the loader lists its inputs
        lacking = {f: lacking[f] for f in order}
        every = ", ".join(dict.fromkeys(p for prefixes in lacking.values() for p in prefixes))
        fields = _listed(order)
        problems.append(
            f"{fields}: {name} is not an LTX-2 audio-video checkpoint by itself: it lacks "
            f"{_listed([HOLDS[f] for f in lacking])} (no {every} entries). Pick them, the split files of the same "
            f"release, in {fields}; or a full LTX-2.3 checkpoint."
        )
    for field, prefixes in wrong.items():
        path = Path(getattr(bundle, field))
        problems.append(
            f"{field}: {path.name} does not hold {HOLDS[field]} (no {', '.join(shown(p) for p in prefixes)} entries). "
            f"Pick the file of {HOLDS[field]} there (ComfyUI's models/vae/ or models/text_encoders/)."
        )
    return problems


def _listed(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def check_bundle(bundle: Bundle) -> dict:
    """What the loader node checks when the files are picked, from headers and small files only: the checkpoint and
    the split files together hold every component, the Gemma folder or file is usable, the LoRA's factors are
    complete and fit the checkpoint's transformer. Returns the config the components are sized by: the checkpoint's,
    each section a split file carries taken from it."""
    problems = missing_parts(bundle)
    if problems:
        raise LTX2InputError(problems[0])
    checkpoint, split = _headers(bundle)
    config = dict(checkpoint.config())
    for component in COMPONENTS.values():
        for part in component.parts:
            if part.field in split and part.section is not None:
                section = split[part.field].config().get(part.section)
                if section is not None:
                    config[part.section] = section
    check_text_encoder(bundle.text_encoder)
    check_lora(bundle.distilled_lora, checkpoint)
    return config


def estimates(bundle: Bundle, policies: dict) -> dict[str, dict[str, int]]:
    """{component: {"bytes": what it will hold under its policy, "file_bytes": what its tensors take in the files}}
    of each component a policy is chosen for, from the headers (for the loader's panel: as_stored keeps a low-bit
    file's bytes, a dequantizing policy does not)."""
    from .plan import ComponentPlan

    found = {}
    for name, policy in policies.items():
        plan = ComponentPlan.read(bundle, name)
        stored = sum(h.entries[k].nbytes for h in plan.headers.values() for k in plan.renames if k in h.entries)
        found[name] = {"bytes": sum(plan.sizes(policy).values()), "file_bytes": stored}
    return found
