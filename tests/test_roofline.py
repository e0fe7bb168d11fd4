"""The speed-of-light floor: work counting, unit choice, ceilings cache (CPU, fast)."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
from torch import nn

from kernelwright.evaluate import roofline
from kernelwright.evaluate.roofline import Ceilings, Work

F32 = 4


def test_linear_work():
    m, k, n = 8, 64, 32
    work = roofline.count_work(nn.Linear(k, n), [torch.randn(m, k)], "cpu")
    assert work.flops == 2 * m * n * k
    assert work.bytes == (m * k + n * k + n + m * n) * F32
    assert work.flops_by_op == {"aten.addmm": 2 * m * n * k}
    assert work.reference_units == {"fp32"}


def test_elementwise_counts_no_flops():
    work = roofline.count_work(nn.GELU(), [torch.randn(16, 64)], "cpu")
    assert work.flops == 0
    assert work.bytes == 2 * 16 * 64 * F32
    assert work.reference_units == {"fp32"}


def test_conv_on_cpu_is_fp32():
    conv = nn.Conv2d(3, 8, 3)
    x = torch.randn(2, 3, 16, 16)
    work = roofline.count_work(conv, [x], "cpu")
    assert work.flops > 0 and "aten.convolution" in work.flops_by_op
    assert work.reference_units == {"fp32"}
    assert work.bytes == (x.numel() + conv.weight.numel() + conv.bias.numel() + 2 * 8 * 14 * 14) * F32


def test_bf16_matmul_unit():
    class MM(nn.Module):
        def forward(self, a, b):
            return a @ b

    a, b = torch.randn(32, 16, dtype=torch.bfloat16), torch.randn(16, 8, dtype=torch.bfloat16)
    work = roofline.count_work(MM(), [a, b], "cpu")
    assert work.reference_units == {"bf16"}
    assert work.flops == 2 * 32 * 16 * 8
    assert work.bytes == (32 * 16 + 16 * 8 + 32 * 8) * 2


def test_tuple_outputs_and_unused_tensors():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(4, 4, bias=False)
            self.unused = nn.Linear(100, 100)  # no kernel must read it

        def forward(self, x, ignored):
            y = self.used(x)
            return y, y.relu()

    work = roofline.count_work(Two(), [torch.randn(2, 4), torch.randn(1000)], "cpu")
    assert work.bytes == (2 * 4 + 16 + 2 * 2 * 4) * F32


def test_tf32_flags_and_the_conv_trap(monkeypatch):
    # PyTorch's defaults: fp32 convs on TF32, fp32 matmuls not.
    assert roofline.conv_tf32() is True
    assert roofline.matmul_tf32() is False
    assert roofline.op_unit("conv", torch.float32, "cuda") == "tf32"
    assert roofline.op_unit("matmul", torch.float32, "cuda") == "fp32"
    assert roofline.op_unit("conv", torch.float32, "cpu") == "fp32"
    assert roofline.op_unit("matmul", torch.float16, "cuda") == "fp16"
    monkeypatch.setattr(roofline, "matmul_tf32", lambda: True)
    assert roofline.op_unit("matmul", torch.float32, "cuda") == "tf32"


H100 = Ceilings("test", bandwidth=3.0e12,
                flops={"fp32": 52e12, "tf32": 400e12, "fp16": 690e12, "bf16": 690e12}, measured_at="2025-01-01")


def _work(flops, nbytes, units=("fp32",)):
    return Work(flops=flops, bytes=nbytes, flops_by_op={}, reference_units=frozenset(units))


def test_memory_and_compute_bound():
    mem = roofline.speed_of_light(_work(1e9, 3e9), H100, "fp32")  # 1e9/52e12 = 19us < 3e9/3e12 = 1ms
    assert mem.bound == "memory" and mem.seconds == pytest.approx(1e-3)
    assert mem.compute_seconds == pytest.approx(1e9 / 52e12)
    comp = roofline.speed_of_light(_work(2 * 4096**3, 3 * 4096**2 * 4), H100, "fp32")
    assert comp.bound == "compute" and comp.seconds == pytest.approx(2 * 4096**3 / 52e12)
    zero = roofline.speed_of_light(_work(0, 3e6), H100, "fp32")
    assert zero.compute_seconds == 0 and zero.bound == "memory"


def test_unit_choice():
    w = 2 * 8192**3
    assert roofline.speed_of_light(_work(w, 0), H100, "fp32").unit == "fp32"
    trap = roofline.speed_of_light(_work(w, 0, ("tf32",)), H100, "fp32")
    assert trap.unit == "tf32" and trap.seconds == pytest.approx(w / 400e12)
    assert roofline.speed_of_light(_work(w, 0), H100, "tf32").unit == "tf32"
    assert roofline.speed_of_light(_work(w, 0), H100, "bf16").unit in {"bf16", "fp16"}
    bf = Ceilings("x", 1e12, {"fp32": 1e12, "tf32": 2e12, "fp16": 3e12, "bf16": 4e12}, "2025-01-01")
    assert roofline.speed_of_light(_work(w, 0), bf, "bf16").unit == "bf16"
    assert roofline.speed_of_light(_work(w, 0, ("bf16",)), bf, "fp32").unit == "bf16"
    cpu = Ceilings("cpu", 5e10, {"fp32": 1e11}, "2025-01-01")  # unmeasured units are skipped
    assert roofline.speed_of_light(_work(w, 0, ("bf16",)), cpu, "bf16").unit == "fp32"


def test_admitted_units():
    assert roofline.admitted_units("fp32") == {"fp32"}
    assert roofline.admitted_units("tf32") == {"fp32", "tf32"}
    assert roofline.admitted_units("fp16") == {"fp32", "tf32", "fp16"}
    assert roofline.admitted_units("bf16") == set(roofline.UNITS)
    with pytest.raises(ValueError):
        roofline.admitted_units("int8")


def test_impossible_margin():
    floor = roofline.speed_of_light(_work(0, 3e9), H100, "fp32")  # 1 ms
    assert not roofline.is_impossible(floor, 1e-3)
    assert not roofline.is_impossible(floor, 0.95e-3)
    assert roofline.is_impossible(floor, 0.85e-3)
    assert floor.fraction(2e-3) == pytest.approx(0.5)
    assert math.isinf(floor.fraction(0))


def test_ceilings_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("KERNELWRIGHT_CACHE_DIR", str(tmp_path))
    calls = []

    def fake(device):
        calls.append(device)
        return Ceilings("fake", 1e11, {"fp32": 1e12}, "2025-01-01")

    monkeypatch.setattr(roofline, "measure_ceilings", fake)
    first = roofline.ceilings("cpu")
    second = roofline.ceilings("cpu")
    assert calls == ["cpu"] and first == second
    assert list((tmp_path / "ceilings").glob("*.json"))
    roofline.ceilings("cpu", refresh=True)
    assert len(calls) == 2
    assert Ceilings.from_dict(first.to_dict()) == first


def test_measure_ceilings_smoke():
    t0 = time.perf_counter()
    ceil = roofline.measure_ceilings("cpu", copy_bytes=1 << 20, matmul_size=128)
    assert time.perf_counter() - t0 < 2
    assert ceil.bandwidth > 0 and ceil.flops["fp32"] > 0
    assert set(ceil.flops) <= set(roofline.UNITS)
    assert ceil.read_bandwidth > 0


def test_memory_floor_reads_at_the_read_bandwidth_and_copies_at_the_copy_s():
    ceil = Ceilings("x", 4.0e12, {"fp32": 1e14}, "2026-11-30", read_bandwidth=5.0e12)
    gb = 10**9
    assert ceil.memory_seconds(gb, 0) == pytest.approx(gb / 5.0e12)  # a reduction: reads alone
    assert ceil.memory_seconds(gb, gb) == pytest.approx(2 * gb / 4.0e12)  # copy-shaped: the copy's floor
    assert ceil.memory_seconds(0, gb) == pytest.approx(gb / 4.0e12)  # writes alone: never above the copy's
    assert ceil.memory_seconds(2 * gb, gb) < 3 * gb / 4.0e12  # mostly reads: under the copy's
    # Reads measured slower than the copy (noise) count at the copy's rate; unmeasured: the copy's.
    slow = Ceilings("x", 4.0e12, {"fp32": 1e14}, "2026-11-30", read_bandwidth=3.0e12)
    assert slow.memory_seconds(gb, 0) == pytest.approx(gb / 4.0e12)
    assert Ceilings("x", 4.0e12, {"fp32": 1e14}, "2026-11-30").memory_seconds(gb, gb) == pytest.approx(2 * gb / 4.0e12)
    floor = roofline.speed_of_light(Work(0, 2 * gb, {}, frozenset({"fp32"}), written=gb), ceil, "fp32")
    assert floor.memory_seconds == pytest.approx(gb / 5.0e12 + gb * (2 / 4.0e12 - 1 / 5.0e12))


def test_ceilings_cached_before_the_read_bandwidth_are_measured_again(monkeypatch, tmp_path):
    monkeypatch.setenv("KERNELWRIGHT_CACHE_DIR", str(tmp_path))
    fresh = Ceilings("fake", 1e11, {"fp32": 1e12}, "2026-11-30", read_bandwidth=2e11)
    monkeypatch.setattr(roofline, "measure_ceilings", lambda device: fresh)
    from kernelwright import environment

    old = tmp_path / "ceilings" / f"{environment.current('cpu').key()}.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"device_name": "fake", "bandwidth": 1e11, "flops": {"fp32": 1e12},
                               "measured_at": "2026-01-01"}))
    assert roofline.ceilings("cpu") == fresh
