"""Memory: the one budget of the process and every residency decision (budget.py), block streaming
(streaming.py), byte accounting (accounting.py), the device-memory ledger (ledger.py), the run report
(report.py) and the test-only fault switch (faults.py).

A leaf of the pack beside quant/: it imports torch, never ComfyUI or the model layer; the host's memory manager
plugs in through records.Bridge."""
