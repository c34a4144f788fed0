"""The CPU ledger counts tensors through a dispatch mode and weak-reference callbacks: those callbacks may run at any
allocation (the cycle collector), also while the ledger itself is counting a new tensor."""

import threading

import torch

from ltx2_a2v.memory.ledger import CpuLedger


def test_a_tensor_freed_while_the_ledger_counts_another_is_uncounted_without_deadlock():
    """Making the weak reference for a new tensor inside `add` may start Python's cycle collector, which frees other
    counted tensors and runs their callbacks on the same thread while `add` holds the ledger's lock. A plain lock
    hung there (the suite's two-stage runs did, until CI's time ran out). The collector's timing cannot be forced,
    so the test frees a counted tensor while holding the lock as `add` does; on a thread, so that a hang fails."""
    ledger, done = CpuLedger(), threading.Event()
    held = [torch.ones(256)]
    ledger.add(held[0])
    assert ledger.allocated == 256 * 4

    def free_while_counting():
        with ledger._lock:
            held.clear()  # the last reference: its storage's callback runs now, on this thread
        done.set()

    worker = threading.Thread(target=free_while_counting, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert done.is_set(), "the ledger deadlocked: a weak reference's callback waited for the lock its thread held"
    assert ledger.allocated == 0 and ledger.peak == 256 * 4
