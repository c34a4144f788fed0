"""The pack's ComfyUI nodes: thin classes that resolve inputs, call the library below them and return."""
