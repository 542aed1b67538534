"""Learning-rate and drop-path schedules as pure functions of progress, so a resumed run recomputes
exactly what an uninterrupted one used (nothing to checkpoint)."""
from __future__ import annotations

import math


def cosine(high: float, low: float, t: float, length: float) -> float:
    """Cosine annealing from `high` at t = 0 to `low` at t = length (SGDR's formula)."""
    return low + 0.5 * (high - low) * (1 + math.cos(math.pi * t / length))


def learning_rate(r: dict, epoch: int, step: int, steps_per_epoch: int) -> float:
    """LR for 0-based `epoch` and `step`. `schedule_unit: epoch` holds it for the epoch (DARTS steps
    its cosine once per epoch); `step` moves it every step."""
    per_step = r["schedule_unit"] == "step"
    total = r["epochs"] * (steps_per_epoch if per_step else 1)
    t = epoch * steps_per_epoch + step if per_step else epoch
    lr, lr_min = r["lr"], r["lr_min"]
    schedule = r["schedule"]
    if schedule == "cosine":
        return cosine(lr, lr_min, t, total)
    if schedule == "cyclic_cosine":
        # ASAP: `cycles` cosine cycles of equal length, each restarting at cycle_decay times the last peak
        cycles = r["cycles"]
        length = total / cycles
        k = min(int(t // length), cycles - 1)
        peak = lr * r["cycle_decay"] ** k
        return cosine(peak, lr_min, t - k * length, length)
    if schedule == "linear":
        return lr_min + (lr - lr_min) * (1 - t / total)
    raise ValueError(schedule)


def drop_path_probability(r: dict, epoch: int) -> float:
    """DARTS scales drop path by epoch / epochs (rising linearly from 0); `constant` holds it."""
    p = r["drop_path"]
    if r["drop_path_schedule"] == "linear":
        return p * epoch / r["epochs"]
    return p
