"""The model layer: LTX-2 components built from the release files (component table, Gemma root, plans, the
streaming loader and the build), the compute dtypes, and the A2V pipeline on plain tensors.

It imports quant/ and memory/ below it, never ComfyUI: everything here is testable without a host."""
