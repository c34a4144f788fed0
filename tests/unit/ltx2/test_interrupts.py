"""An interrupt reaches a component's forward between its modules, within a second, however long the whole call."""

import time

import pytest
import torch

from ltx2_a2v.ltx2.a2v.interrupts import EVERY_SECONDS, interruptible


class Slow(torch.nn.Module):
    def forward(self, x):
        time.sleep(0.05)
        return x


class Interrupted(Exception):
    pass


def test_a_long_forward_stops_at_the_next_module_after_the_interrupt():
    model = torch.nn.Sequential(*(Slow() for _ in range(400)))  # 20 s uninterrupted
    asked = []

    def check(_):
        asked.append(time.monotonic())
        if len(asked) == 3:
            raise Interrupted

    started = time.monotonic()
    with pytest.raises(Interrupted), interruptible(model, check):
        model(torch.zeros(1))
    assert time.monotonic() - started < 3 * EVERY_SECONDS + 1.0
    assert not any(m._forward_pre_hooks for m in model.modules())  # the hooks go with the block


def test_no_check_costs_nothing():
    model = torch.nn.Sequential(Slow())
    with interruptible(model, None):
        assert not model._forward_pre_hooks
