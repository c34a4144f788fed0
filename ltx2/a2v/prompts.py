"""The prompts encoded by the text encoder and the embeddings processor, or taken from an earlier run's kept
encoding (memory/kept_outputs.py) when nothing it depends on changed."""

from collections.abc import Callable

import torch
from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessorOutput

from ...errors import LTX2InputError
from ...memory.budget import BUDGET
from ...memory.kept_outputs import ENCODED_PROMPTS
from ..components import activations
from ..components.model_spec import ModelSpec
from ..files.file_identity import identities
from ..files.gemma_single_file import open_text_encoder
from . import finite
from .interrupts import interruptible
from .limits import check_prompt

# Called for each tensor read while a component is built; may raise to interrupt a long load.
OnTensor = Callable[[str], None] | None


def encode_prompts(
    model: ModelSpec,
    prompts: list[str],
    device: torch.device,
    on_tensor: OnTensor = None,
    names: tuple[str, ...] = ("prompt", "negative_prompt"),
):
    """Each prompt's encoding: kept from an earlier run (memory/kept_outputs.py) when the text, the text encoder's
    files and policies and the transformer's dtype are the same, else encoded and kept. A run whose prompts were
    all kept builds no text encoder: the run report says "prompt reused"."""
    for name, text in zip(names, prompts):
        problem = check_prompt(name, text)
        if problem:
            raise LTX2InputError(problem)
    keys = [prompt_key(model, text, device) for text in prompts]
    files = model.files_of("text_encoder") + model.files_of("embeddings_processor")
    built_from = identities(files)
    kept = [ENCODED_PROMPTS.get(key) for key in keys]
    with BUDGET.phase("text encode", device):
        missing = [i for i, k in enumerate(kept) if k is None]
        # What is kept is never handed out: each run gets its own copy (on a CPU `encoding_on` would return the same).
        encoded = [None if k is None else encoding_on(k[0], device, copy=True) for k in kept]
        if missing:
            fresh = _encode(model, [prompts[i] for i in missing], device, on_tensor)
            for i, (encoding, tokens) in zip(missing, fresh):
                encoded[i], kept[i] = encoding, (encoding_on(encoding, "cpu", copy=True), tokens)
                ENCODED_PROMPTS.put(
                    keys[i],
                    kept[i],
                    tuple(t for t in kept[i][0] if t is not None),
                    device,
                    alive=lambda: identities(files) == built_from,
                )
        reused = [names[i] for i in range(len(prompts)) if i not in missing]
        if reused and BUDGET.last_run is not None:
            BUDGET.last_run.notes.append(
                f"prompt reused: {' and '.join(reused)} encoded by an earlier run"
                + ("" if missing else ", no text encoder built")
            )
        for name, (_, (count, limit)) in zip(names, kept):
            if count > limit and BUDGET.last_run is not None:
                BUDGET.last_run.notes.append(
                    f"{name} cut to the text encoder's {limit} tokens: it has {count}, the "
                    f"last {count - limit} were not read"
                )
        return encoded


def _encode(model: ModelSpec, prompts: list[str], device: torch.device, on_tensor: OnTensor):
    """[(encoding, (tokens, the encoder's token limit))] of each prompt, by the text encoder and the embeddings
    processor (the encoder cuts a longer prompt to its limit, as ltx-pipelines does)."""
    working = 0
    if model.bundle.text_encoder is not None:
        working = activations.text(
            open_text_encoder(model.bundle.text_encoder).config(), model.config, model.precision_on(device).text_encoder
        )
    with (
        model.component("text_encoder", device, on_tensor=on_tensor, activations=working) as encoder,
        interruptible(encoder, on_tensor),
    ):
        tokenizer = encoder.tokenizer
        tokens = [(len(tokenizer.tokenizer(p)["input_ids"]), tokenizer.max_length) for p in prompts]
        raw = [encoder.encode(p) for p in prompts]
        finite.check(model, "text encode", "text_encoder", raw)
        del encoder, tokenizer
    with (
        model.component("embeddings_processor", device, on_tensor=on_tensor, activations=working) as processor,
        interruptible(processor, on_tensor),
    ):
        # The contexts go to the transformer: in its compute dtype (the text family's may differ).
        dtype = model.precision_on(device).transformer
        encoded = [encoding_on(processor.process_hidden_states(hidden, mask), device, dtype) for hidden, mask in raw]
        finite.check(model, "text encode", "embeddings_processor", encoded)
        del processor, raw
    return list(zip(encoded, tokens))


def prompt_key(model: ModelSpec, prompt: str, device: torch.device) -> tuple:
    """What an encoded prompt depends on: the text, the files and policies of both text components, and the dtype
    it is cast to for the transformer."""
    return (
        prompt,
        model.component_key("text_encoder", device),
        model.component_key("embeddings_processor", device),
        str(model.precision_on(device).transformer),
    )


def encoding_on(
    encoding: EmbeddingsProcessorOutput,
    device: torch.device | str,
    dtype: torch.dtype | None = None,
    copy: bool = False,
) -> EmbeddingsProcessorOutput:
    """The encoding on `device`; its floating tensors (not the attention mask) in `dtype` if given; new tensors
    if `copy` (what is kept must not be the run's own tensors)."""

    def move(t: torch.Tensor) -> torch.Tensor:
        if dtype is not None and t.is_floating_point():
            return t.to(device, dtype, copy=copy)
        return t.to(device, copy=copy)

    return EmbeddingsProcessorOutput(*(move(t) if t is not None else None for t in encoding))
