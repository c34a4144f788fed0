"""Memory: the one budget of the process and every residency decision (budget.py), block streaming (streaming.py:
units and their stores; streamer.py: moving them), byte accounting (accounting.py), the device-memory ledger
(ledger.py) and the run report (report.py).

A leaf of the pack beside quant/: it imports torch, never ComfyUI or the model layer; the host's memory manager
plugs in through records.Bridge."""
