"""Fault injection, so the reliability tests exercise the real failure paths rather than mocks.

`NASFLOW_FAULT=nan-loss@<epoch>` turns the first training loss of that epoch (counted from 1) into NaN,
as a diverging run would. Unset (always, outside tests) it changes nothing.
"""
from __future__ import annotations

import os

import torch


def poisoned(loss: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
    spec = os.environ.get("NASFLOW_FAULT", "")
    if spec.startswith("nan-loss@") and step == 1 and epoch == int(spec.split("@", 1)[1]):
        return loss * float("nan")
    return loss
