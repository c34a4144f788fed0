"""Building LTX-2 components from release files: file layout, component table, Gemma root.

Nothing here imports ComfyUI, so all of it is testable on its own.
"""
