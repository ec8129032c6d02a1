"""Timing statistics and plans (CPU); a real CUDA-event + NVML run on a tiny forward (GPU)."""

import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.stages import time as timing


def test_summary_median_and_quartiles():
    s = timing.summarize_times_us([10.0, 20.0, 30.0, 40.0, 50.0], batch=10)
    assert s["us_per_batch_median"] == 30.0
    assert s["us_per_batch_q1"] == 20.0 and s["us_per_batch_q3"] == 40.0
    assert s["us_per_image_median"] == 3.0
    assert s["us_per_image_q1"] == 2.0 and s["us_per_image_q3"] == 4.0
    assert s["launches"] == 5
    assert s["iqr_over_median"] == pytest.approx(20.0 / 30.0)


def test_summary_ignores_one_outlier_in_the_median():
    s = timing.summarize_times_us([10.0] * 99 + [1e6], batch=1)
    assert s["us_per_batch_median"] == 10.0
    assert s["us_per_batch_mean"] > 1000


def test_summary_rejects_empty():
    with pytest.raises(ValueError):
        timing.summarize_times_us([], batch=1)


def test_rotation_covers_twice_l2_for_small_inputs():
    l2 = 50 * 2**20
    n = timing.rotation_buffer_count(input_bytes=618_348, l2_bytes=l2, rotate=True)
    assert n * 618_348 > 2 * l2
    assert timing.rotation_buffer_count(618_348, l2, rotate=False) == 1


def test_rotation_not_needed_for_large_inputs():
    assert timing.rotation_buffer_count(200 * 2**20, 50 * 2**20, rotate=True) == 1


def test_rotation_is_capped():
    assert timing.rotation_buffer_count(16, 50 * 2**20, rotate=True, max_buffers=64) == 64


def test_launch_count_reaches_min_seconds_and_repeats():
    assert timing.launch_count(repeats=50, min_seconds=1.0, est_us_per_launch=100.0, max_launches=10**6) == 10_000
    assert timing.launch_count(repeats=50, min_seconds=1.0, est_us_per_launch=1e6, max_launches=10**6) == 50
    assert timing.launch_count(repeats=50, min_seconds=10.0, est_us_per_launch=1.0, max_launches=1000) == 1000


@pytest.mark.gpu
def test_time_forward_on_a_tiny_forward(cupy_device):
    cupy = cupy_device
    from pipeline.stages.profile_target import make_selftest_forward

    fwd = make_selftest_forward("selftest", batch=2, height=64, width=64)
    r = timing.time_forward(fwd, batch=2, warmup=5, repeats=20, min_seconds=1.0, rotate_inputs=True)
    assert r["launches"] >= 20
    assert r["input_buffers"] > 1  # 32 KB per batch is far inside L2
    assert 0 < r["us_per_image_q1"] <= r["us_per_image_median"] <= r["us_per_image_q3"]
    assert r["gpu_busy_s"] >= 0.5  # about min_seconds of event-timed work
    assert "nvml_error" not in r, r.get("nvml_error")
    assert r["energy_mj_per_image"] > 0
    assert 10.0 < r["avg_power_w"] < 1000.0
    assert r["peak_power_w"] >= r["avg_power_w"] * 0.5
    assert isinstance(r["throttled"], bool)
    assert r["sm_clock_mhz_median"] > 0
    assert np.isfinite(r["energy_mj_per_image_power_integral"])


def test_one_time_job_sweeps_its_batches_into_a_file_each(tmp_path, monkeypatch):
    """The time rule's body without a GPU: one GPU claim, each batch through run_stage (verify
    check, stamp) into its own time.json, with the batch in its wildcards."""
    import json
    from types import SimpleNamespace

    from pipeline.stages.time import sweep_batches

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FUSED_LAYER_NO_GPU", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    (tmp_path / "verify.json").write_text(json.dumps({"passed": True}))

    class Named(SimpleNamespace):  # Snakemake's Namedlist, as far as the stage reads it
        def keys(self):
            return list(vars(self))

        def get(self, key, default=None):
            return vars(self).get(key, default)

    outputs = [f"results/h200/alexnet/lbl/b{b}/time.json" for b in (1, 16)]
    sm = SimpleNamespace(wildcards=Named(gpu="h200", network="alexnet", variant="lbl"),
                         input=Named(verify=str(tmp_path / "verify.json")), output=SimpleNamespace(json=outputs),
                         log=[str(tmp_path / "time.log")], params=SimpleNamespace(batches=[1, 16], timing={}))  # fmt: skip
    seen = []

    def body(one, v):
        seen.append((one.wildcards.batch, v.name, one.wildcards.get("network"), os.environ["CUDA_VISIBLE_DEVICES"]))
        return {"us_per_image_median": float(one.wildcards.batch)}

    results = sweep_batches(sm, body)
    assert seen == [("1", "lbl", "alexnet", "0"), ("16", "lbl", "alexnet", "0")]
    for batch, out, res in zip((1, 16), outputs, results):
        data = json.loads(Path(out).read_text())
        assert data == res and data["us_per_image_median"] == batch
        assert data["variant"] == "lbl" and data["network"] == "alexnet" and data["schema_version"] == 2
    (tmp_path / "verify.json").write_text(json.dumps({"passed": False}))
    with pytest.raises(RuntimeError, match="refusing to measure"):
        sweep_batches(sm, body)


def test_only_the_channels_last_anchor_times_its_convs_alone():
    from kernels.registry import VARIANTS
    from kernels.vendor_convs import times_convs_alone

    assert sorted(n for n, v in VARIANTS.items() if times_convs_alone(v)) == ["vendor-cl", "vendor-cl-bf16",
                                                                               "vendor-cl-fp16", "vendor-cl-tf32"]


def test_convs_alone_are_timed_like_a_forward_and_kept_per_layer(monkeypatch):
    """time_convs_alone hands each conv to time_forward with the timing options and no NVML, and
    keeps a few of its keys per conv, in network order (no GPU: both are stand-ins)."""
    from types import SimpleNamespace

    import kernels.vendor_convs

    convs = [SimpleNamespace(name="conv1"), SimpleNamespace(name="conv2")]
    monkeypatch.setattr(kernels.vendor_convs, "convs_alone", lambda fwd: convs)
    calls = []

    def fake_time_forward(fwd, batch, warmup, repeats, min_seconds, rotate, *, use_nvml, max_launches, **kw):
        calls.append((fwd.name, batch, warmup, repeats, min_seconds, rotate, use_nvml, max_launches))
        return {"us_per_image_median": 2.0, "us_per_image_q1": 1.9, "us_per_image_q3": 2.1, "launches": 300,
                "input_buffers": 4, "gpu_busy_s": 1.0}  # fmt: skip

    monkeypatch.setattr(timing, "time_forward", fake_time_forward)
    opts = {**timing.DEFAULTS, "warmup": 7, "repeats": 50}
    out = timing.time_convs_alone(object(), 16, opts)
    assert [c[0] for c in calls] == ["conv1", "conv2"]
    assert calls[0][1:] == (16, 7, 50, opts["min_seconds"], opts["rotate_inputs"], False, opts["max_launches"])
    assert out[0] == {"layer": "conv1", "us_per_image_median": 2.0, "us_per_image_q1": 1.9, "us_per_image_q3": 2.1,
                      "launches": 300, "input_buffers": 4}  # fmt: skip


@pytest.fixture
def torch_device(cupy_device):
    """torch with CUDA beside CuPy, or the test skips and says why (the vendor variants' condition)."""
    from kernels.registry import vendor_available

    ok, why = vendor_available()
    if not ok:
        pytest.skip(f"needs torch with CUDA: {why}")
    return cupy_device


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_vendor_cl_times_each_conv_alone_below_the_block(torch_device, precision):
    variant = "vendor-cl" if precision == "fp32" else f"vendor-cl-{precision}"
    r = timing.time_variant(variant, 16, None, warmup=5, repeats=20, min_seconds=0.2)
    convs = r["convs_alone"]
    assert [c["layer"] for c in convs] == ["conv1", "conv2"]
    for c in convs:
        assert 0 < c["us_per_image_q1"] <= c["us_per_image_median"] <= c["us_per_image_q3"], c
        assert c["launches"] >= 20 and c["useful_gflop_per_s"] > 0
    # the block also runs ReLU, LRN, the pools and the input's layout conversion
    assert sum(c["us_per_image_median"] for c in convs) < r["us_per_image_median"]
    assert sum(c["useful_gflop_per_s"] * c["us_per_image_median"] for c in convs) * 1e3 / 2 == pytest.approx(
        r["useful_macs_per_image"], rel=1e-6)  # the convs are all of the block's MACs


@pytest.mark.gpu
def test_a_conv_alone_computes_the_layers_conv(torch_device):
    """ConvAlone runs the layer's own conv (stride, pad, groups, bias) on a channels-last input."""
    import torch

    from kernels.api import make_forward
    from kernels.vendor_convs import convs_alone
    from pipeline.core.reference import conv2d

    fwd = make_forward("vendor-cl", 2)
    at = [i for i, layer in enumerate(fwd.layers) if layer.type == "conv"]
    for i, conv in zip(at, convs_alone(fwd), strict=True):
        layer, s_out = fwd.layers[i], fwd.shapes[i + 1]
        x = conv.random_input(3)
        assert x.is_contiguous(memory_format=torch.channels_last) and tuple(x.shape) == conv.input_shape
        out = conv(x)
        torch.cuda.synchronize()
        w, b = fwd.params[layer.name]
        ref = conv2d(x.double().cpu().numpy(), w.astype(np.float64), b.astype(np.float64), layer.stride, layer.pad,
                     layer.groups)  # fmt: skip
        got = out.double().cpu().numpy()
        assert got.shape == ref.shape == (2, s_out.channels, s_out.height, s_out.width)
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-4


def test_unknown_launch_mode_is_refused_before_any_gpu_work():
    with pytest.raises(ValueError, match="launch must be one of"):
        timing.time_forward(object(), batch=1, launch="stream")


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["lbl-fp16", "fused-reuse-t4x7-fp16", "lbl-gen-fp16", "vendor-cl-fp16"])
def test_graph_replay_writes_what_a_call_writes(cupy_device, variant):
    """A CUDA graph of a pass (kernels/graphs.py) computes the call's output, also after the other
    buffers' graphs ran, and the time stage replays graphs, keeping the eager time beside."""
    cupy = cupy_device
    from kernels.api import make_forward
    from kernels.registry import variant as lookup, vendor_available

    if lookup(variant).strategy == "vendor" and not vendor_available()[0]:
        pytest.skip(f"{variant}: {vendor_available()[1]}")
    fwd = make_forward(variant, 1)
    xs = [fwd.random_input(s) for s in (1, 2)]
    want = [fwd.decode(fwd(x).copy()) for x in xs]
    replays = [fwd.graph(x) for x in xs]
    for i in (1, 0, 1):
        fwd.poison_output()
        replays[i]()
        cupy.cuda.get_current_stream().synchronize()
        np.testing.assert_allclose(fwd.decode(fwd.output), want[i], rtol=1e-6, atol=1e-6)
    r = timing.time_forward(fwd, batch=1, warmup=3, repeats=10, min_seconds=0.1, use_nvml=False)
    assert r["launch"] == "graph" and "graph_error" not in r
    assert r["eager_us_per_batch_calibration"] > 0 and r["us_per_batch_median"] > 0
