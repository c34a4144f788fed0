"""The two-stage audio-to-video pipeline on plain tensors, with the device passed in (stages.py), what flows
between its stages (latent.py), how it takes its image and audio (inputs.py) and its size rules (limits.py).

Nothing is imported here: limits.py is plain Python that the nodes check at queue time, even where ltx-core is
missing."""
