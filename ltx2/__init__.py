"""The model layer, in three rooms that import downward only: `files/` reads the files a user has (safetensors
headers and tensors, stored quantized layouts, the Gemma folder or single file, LoRA files, the checkpoint's config),
`components/` makes LTX-2 components from them (the component table, a component's plan, the build under a policy,
compute dtypes, the LoRA kept beside, activation estimates, the loader node's spec), and `a2v/` is the pipeline on
plain tensors.

It imports quant/ and memory/ below it, never ComfyUI: everything here is testable without a host."""
