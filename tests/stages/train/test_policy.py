"""The model to train: weights dtype and autocast per device."""

from __future__ import annotations

from stages.train import TrainConfig


def test_precision_on_cpu_is_float32_without_autocast():
    from stages.train.policy import precision

    assert precision(TrainConfig(device="cpu")) == ("float32", False)
    assert precision(TrainConfig(device="cpu", dtype="bfloat16", lora=True)) == ("bfloat16", False)
