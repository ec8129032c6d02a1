"""Every kernel variant against the float64 reference (GPU), plus the checker's own logic (CPU).

GPU tests carry ``@pytest.mark.gpu`` and skip with the reason when CuPy or a device is missing.
The reference is computed once per (batch, H, W) and shared by all variants: the same seeded
weights and input go to every variant, each on a NaN-poisoned output.
"""

from __future__ import annotations

import numpy as np
import pytest

from kernels.registry import VARIANTS, vendor_available
from pipeline.core.gpu import gpu_skip_reason
from pipeline.core.reference import compare

SKIP = gpu_skip_reason()
gpu = [pytest.mark.gpu, pytest.mark.skipif(SKIP is not None, reason=f"needs an NVIDIA GPU: {SKIP}")]
CONFIGS = [(b, h, w) for b in (1, 3, 16) for h, w in ((227, 227), (231, 199))]
RTOL = 1e-4


def _variants() -> list[str]:
    """Every variant; the PyTorch anchors where torch runs, but not torch.compile (minutes of
    autotuning per shape: the workflow's full sweep runs it)."""
    names = [n for n, v in VARIANTS.items() if v.strategy != "vendor"]
    if SKIP is None and vendor_available()[0]:
        names += [n for n, v in VARIANTS.items() if v.strategy == "vendor" and v.impl != "compile"]
    return names


# ------------------------------------------------------------------ CPU: the comparison itself
def test_compare_flags_unwritten_outputs():
    ref = np.random.default_rng(0).standard_normal((2, 4, 3, 3))
    out = ref.astype(np.float32)
    assert compare(out, ref)["rel_l2_error"] < 1e-6
    out[1, 2, 0, 0] = np.nan  # a poisoned element nobody wrote
    r = compare(out, ref)
    assert r["nonfinite_outputs"] == 1 and r["rel_l2_error"] == float("inf")


def test_compare_flags_one_wrong_pixel():
    ref = np.random.default_rng(1).standard_normal((1, 256, 13, 13))
    out = ref.copy()
    out[0, 7, 12, 12] += 0.1 * np.abs(ref).max()
    r = compare(out, ref)
    assert r["max_abs_error_scaled"] > 10 * RTOL  # the max check catches what the norm dilutes


# ------------------------------------------------------------------ GPU
@pytest.fixture(scope="module")
def cases():
    """(batch, H, W, precision) -> (params, device input, float64 reference), built lazily once each.

    The same seeded float32 weights and input serve every precision; a 16-bit variant's reference
    is computed on them rounded to its precision (what its kernels hold: Forward.params, encode)."""
    if SKIP is not None:
        pytest.skip(f"needs an NVIDIA GPU: {SKIP}")
    from kernels.api import make_forward
    from kernels.registry import Strategy, Variant
    from pipeline.stages.verify import reference_output

    cache: dict = {}

    def get(b: int, h: int, w: int, precision: str = "fp32"):
        if (b, h, w, precision) not in cache:
            base = make_forward("lbl", b, h, w, seed=1000 + b + h)
            x32 = base.random_input(2000 + b + w)
            # the reference of a precision is taken on its lbl's rounded values (the PyTorch
            # anchor's where a precision has no lbl)
            holder = Variant(Strategy.LBL, precision=precision).name
            holder = holder if holder in VARIANTS else Variant(Strategy.VENDOR, precision=precision).name
            fwd = make_forward(holder, b, h, w, params=base.params)
            x = fwd.encode(x32)
            cache[(b, h, w, precision)] = (base.params, x, reference_output(fwd, x))
        return cache[(b, h, w, precision)]

    return get


@pytest.mark.parametrize("b,h,w", CONFIGS)
@pytest.mark.parametrize("variant", _variants())
def test_variant_matches_reference(variant, b, h, w, cases):
    if SKIP is not None:
        pytest.skip(f"needs an NVIDIA GPU: {SKIP}")
    from kernels.api import make_forward
    from pipeline.stages.verify import check_forward

    precision = VARIANTS[variant].precision
    params, x, ref = cases(b, h, w, precision)
    fwd = make_forward(variant, b, h, w, params=params)
    assert fwd.output_shape == ref.shape
    r = check_forward(fwd, x, ref)  # NaN-poisoned output, the verify stage's tolerance per precision
    assert fwd(x) is fwd.output  # writes the preallocated output
    assert r["nonfinite_outputs"] == 0, f"{variant} b{b} {h}x{w}: {r}"
    assert r["passed"], f"{variant} b{b} {h}x{w}: {r}"
    if precision == "fp32":
        assert r["rel_l2_error"] < RTOL and r["max_abs_error_scaled"] < 10 * RTOL, f"{variant} b{b} {h}x{w}: {r}"


test_variant_matches_reference = pytest.mark.gpu(test_variant_matches_reference)


@pytest.mark.parametrize("variant", ["lbl", "fused-reuse-t4", "lbl-fp16", "lbl-bf16", "lbl-tf32"])
def test_forward_contract(variant):
    if SKIP is not None:
        pytest.skip(f"needs an NVIDIA GPU: {SKIP}")
    from kernels.api import make_forward

    fwd = make_forward(variant, 2)
    assert fwd.input_shape == (2, 3, 227, 227) and fwd.output_shape == (2, 256, 13, 13)
    assert fwd.useful_macs_per_image == 105_415_200 + 223_948_800
    assert fwd.kernels and all(isinstance(k, str) for k in fwd.kernels)
    x = fwd.random_input(3)
    assert float(abs(x).sum()) > 0  # never zeros
    assert fwd(x) is fwd.output


test_forward_contract = pytest.mark.gpu(test_forward_contract)


def test_verify_raises_on_mismatch():
    if SKIP is not None:
        pytest.skip(f"needs an NVIDIA GPU: {SKIP}")
    from pipeline.stages.verify import VerificationError, verify

    res = verify("fused-reuse-t2", 1, 227, 227, cubin=None, seed=5, rtol=RTOL)
    assert res["passed"] and res["rel_l2_error"] < RTOL
    with pytest.raises(VerificationError, match=r"fused-reuse-t2.*batch 1, 227x227"):
        verify("fused-reuse-t2", 1, 227, 227, cubin=None, seed=5, rtol=0.0)  # FP32 is never exact


test_verify_raises_on_mismatch = pytest.mark.gpu(test_verify_raises_on_mismatch)


def test_images_per_group():
    from kernels.api import images_per_group

    assert images_per_group(132, 2) == 66 and images_per_group(132, 4) == 33
    assert images_per_group(132, 49) == 2 and images_per_group(132, 200) == 1 and images_per_group(0, 0) == 1


@pytest.mark.parametrize("variant", [n for n, v in VARIANTS.items() if v.strategy in ("reuse", "recompute")])
def test_block_order_groups_cover_every_tile(variant, cases):
    """A batch of two block-order groups and a partial one (fused.cu, images_per_group): every
    (tile, image) pair is computed once, so the whole output matches the reference. With clusters
    (fused_tc.cu WCLUSTER) a group counts image slots of WCLUSTER images, and the last slot here
    holds one image: its other block runs a copy and must store nothing."""
    if SKIP is not None:
        pytest.skip(f"needs an NVIDIA GPU: {SKIP}")

    from kernels.api import make_forward

    group = make_forward(variant, 1).images_per_group
    cl = VARIANTS[variant].define.get("WCLUSTER", 1)
    b = cl * (2 * group + 1) + (2 if cl == 1 else 1)
    from pipeline.stages.verify import check_forward

    params, x, ref = cases(b, 227, 227, VARIANTS[variant].precision)
    fwd = make_forward(variant, b, params=params)
    assert fwd.images_per_group == group < b
    r = check_forward(fwd, x, ref)  # NaN-poisoned output, the tolerance of the variant's precision
    assert r["nonfinite_outputs"] == 0 and r["passed"], f"{variant} b{b}: {r}"


test_block_order_groups_cover_every_tile = pytest.mark.gpu(test_block_order_groups_cover_every_tile)


def _makespan(block_times, sms: int) -> float:
    """Greedy list schedule: each block starts on the SM that frees first, in launch order."""
    import heapq

    free = [0.0] * sms
    for t in block_times:
        heapq.heappush(free, heapq.heappop(free) + t)
    return max(free)


def test_block_order_simulation_behind_the_docs():
    """The numbers docs/perf-notes.md step 16 and kernels/api.images_per_group quote: 2x7 at batch 128
    on 132 SMs, strip times in proportion to their conv1 columns (35 and 31), makespan over ideal
    9.4 % image by image and 3.1 % tile by tile within groups of images_per_group images."""
    from kernels.api import images_per_group

    n, sms, strips = 128, 132, (35.0, 31.0)
    ideal = n * sum(strips) / sms
    by_image = [t for _ in range(n) for t in strips]
    group = images_per_group(sms, len(strips))
    by_tile = [t for g0 in range(0, n, group) for t in strips for _ in range(min(group, n - g0))]
    assert round(_makespan(by_image, sms) / ideal - 1, 3) == 0.094
    assert round(_makespan(by_tile, sms) / ideal - 1, 3) == 0.031


# ------------------------------------------------------------------ small batches (lbl on tensor cores)
def test_small_batch_lbl_launches_fill_the_gpu():
    """Batch 1 on 132 SMs: conv1 (3025 pixels, K 384) and conv2 (729 pixels x 2 groups, K 1216)
    take 32-pixel tiles and K slices of >= 4 stages up to two blocks per SM; batch 128 and FP32
    keep the full tile; the LRN splits channels only when the pixels do not fill the GPU."""
    from kernels.api import LBL_MIN_STAGES_PER_SPLIT, lbl_conv_launch, lrn_chunks

    assert lbl_conv_launch(3025, 1, 1, 384, 132, small_tiles=True) == (32, 2)
    assert lbl_conv_launch(729, 1, 2, 1216, 132, small_tiles=True) == (32, 5)
    assert lbl_conv_launch(128 * 3025, 1, 1, 384, 132, small_tiles=True) == (128, 1)
    assert lbl_conv_launch(729, 1, 2, 1216, 132, small_tiles=False) == (128, 1)
    for pixels in (1, 100, 729, 3025, 9075, 16000):
        for kpad in (32, 384, 1216):
            bn, ks = lbl_conv_launch(pixels, 1, 2, kpad, 132, small_tiles=True)
            assert ks == 1 or (kpad // 32 // ks >= LBL_MIN_STAGES_PER_SPLIT and -(-pixels // bn) * 2 * ks <= 264)
    assert lrn_chunks(128 * 3025, 96, 132) == 1
    assert lrn_chunks(3025, 96, 132) == 24 and lrn_chunks(729, 256, 132) == 64
    assert all(1 <= lrn_chunks(p, c, 132) <= max(1, c // 4) for p in (1, 729, 40000) for c in (3, 96, 256))


def test_patch_conv_launches_by_batch():
    """conv1 from the input patch: one-row blocks of 48 channels at batch 1 (2 x 55 = 110 blocks),
    two-row blocks of all 96 from batch 3; conv2 channels-last: one-row blocks of 32 channels until
    the 4-row blocks of 128 give every SM one (batch 10 on 132 SMs). The grids cover every output."""
    from kernels.api import CONV1_PATCH_ENTRIES, CONV_CL_ENTRIES, conv1_patch_launch, conv_cl_launch

    assert conv1_patch_launch(1, 55, 55, 132) == ("lbl_tc_conv1_r1", (1, 55, 2))
    assert conv1_patch_launch(3, 55, 55, 132) == ("lbl_tc_conv1_r2", (1, 28, 3))
    assert conv_cl_launch(1, 2, 256, 27, 27, 132) == ("lbl_tc_conv2cl_r1", (1, 27, 8))
    assert conv_cl_launch(9, 2, 256, 27, 27, 132)[0] == "lbl_tc_conv2cl_r1"
    assert conv_cl_launch(10, 2, 256, 27, 27, 132) == ("lbl_tc_conv2cl_r4", (1, 7, 20))
    for b in (1, 2, 3, 7, 16, 128):
        for oh, ow in ((55, 55), (56, 48), (13, 70)):
            entry, (gx, gy, gz) = conv1_patch_launch(b, oh, ow, 132)
            rows, cols, msplit = CONV1_PATCH_ENTRIES[entry]
            assert gx * cols >= ow and gy * rows >= oh and gz == b * msplit
            entry, (gx, gy, gz) = conv_cl_launch(b, 2, 256, oh // 2, ow // 2, 132)
            rows, cols, bm = CONV_CL_ENTRIES[entry]
            assert gx * cols >= ow // 2 and gy * rows >= oh // 2 and gz * bm == b * 256


def test_conv_cl_applies_to_alexnet_conv2_only():
    from kernels.api import conv1_patch_applies, conv_cl_applies, group_layers

    convs = {l.name: l for l in group_layers() if l.type == "conv"}
    assert conv1_patch_applies(convs["conv1"], 3) and not conv1_patch_applies(convs["conv2"], 96)
    assert conv_cl_applies(convs["conv2"], 96) and not conv_cl_applies(convs["conv1"], 3)
    assert not conv_cl_applies(convs["conv2"], 64)  # 32 channels per group: the gather instead


def test_kx16_weights_keep_every_weight_in_place():
    from kernels.api import pack_weights_kx16

    w = np.random.default_rng(0).standard_normal((96, 3, 11, 11)).astype(np.float32)
    p = pack_weights_kx16(w).reshape(96, 3, 11, 16)
    assert p.shape == (96, 3, 11, 16) and np.array_equal(p[..., :11], w) and not p[..., 11:].any()


def test_kx12_weights_run_over_quads_of_kx_then_zeros():
    """TF32's conv1 with CONV1_KX12 (kernels/conv1_patch.cuh): k = (c*11 + ky)*12 + kx, 99 quads of 4
    kx, then zeros to 51 k8 steps (408 values); a kernel too wide for 12 is refused."""
    from kernels.api import pack_weights_kx12

    w = np.random.default_rng(0).standard_normal((96, 3, 11, 11)).astype(np.float32)
    p = pack_weights_kx12(w)
    assert p.shape == (96, 408)
    q = p[:, :396].reshape(96, 3, 11, 12)
    assert np.array_equal(q[..., :11], w) and not q[..., 11:].any() and not p[:, 396:].any()
    with pytest.raises(ValueError, match="kx = 13 > 12"):
        pack_weights_kx12(np.zeros((96, 3, 11, 13), np.float32))


@pytest.mark.parametrize("variant", ["lbl-fp16", "lbl-bf16"])
@pytest.mark.parametrize("hw", [(227, 227), (231, 199)])
def test_split_k_lbl_matches_reference_twice(variant, hw, monkeypatch):
    """The general gather path (a conv the patch kernels do not compute; forced here for AlexNet's)
    at batch 1 runs both convs split over K (the last block of a tile sums the slices); a second
    call reuses the arrival counters the first left at zero, and both match the reference."""
    if SKIP is not None:
        pytest.skip(f"needs an NVIDIA GPU: {SKIP}")
    import kernels.api as api
    from pipeline.stages.verify import check_forward, reference_output

    monkeypatch.setattr(api, "conv1_patch_applies", lambda layer, in_channels: False)
    monkeypatch.setattr(api, "conv_cl_applies", lambda layer, in_channels: False)
    fwd = api.make_forward(variant, 1, *hw, seed=4)
    assert [l["k_slices"] > 1 for l in fwd.launches if "k_slices" in l] == [True, True], fwd.launches
    assert any(k.endswith("_n32") for k in fwd.kernels)
    for seed in (9, 10):
        x = fwd.random_input(seed)
        r = check_forward(fwd, x, reference_output(fwd, x))
        assert r["passed"], r


test_split_k_lbl_matches_reference_twice = pytest.mark.gpu(test_split_k_lbl_matches_reference_twice)


@pytest.mark.parametrize("variant", ["lbl-fp16", "lbl-bf16", "lbl-tf32"])
@pytest.mark.parametrize("batch,hw", [(1, (227, 227)), (1, (235, 299)), (3, (231, 199)), (16, (227, 227)), (10, (235, 299))])
def test_patch_convs_match_reference(variant, batch, hw):
    """Both lbl convs from shared-memory patches (conv1's two shifted copies, conv2 channels-last) at
    the entries the host picks for the batch, including sizes whose rows and columns leave partial
    blocks, against float64."""
    if SKIP is not None:
        pytest.skip(f"needs an NVIDIA GPU: {SKIP}")
    from kernels.api import CONV1_PATCH_ENTRIES, CONV_CL_ENTRIES, make_forward
    from pipeline.stages.verify import check_forward, reference_output

    fwd = make_forward(variant, batch, *hw, seed=5)
    assert fwd.launches[0]["conv1_patch_entry"] in CONV1_PATCH_ENTRIES, fwd.launches
    assert any(l.get("conv_cl_entry") in CONV_CL_ENTRIES for l in fwd.launches), fwd.launches
    x = fwd.random_input(3)
    r = check_forward(fwd, x, reference_output(fwd, x))
    assert r["nonfinite_outputs"] == 0 and r["passed"], r


test_patch_convs_match_reference = pytest.mark.gpu(test_patch_convs_match_reference)


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["fused-reuse-t2x13-fp16", "fused-recompute-t2x13-bf16", "fused-reuse-t2x13-tf32"])
def test_full_width_tile_refuses_wider_strips_and_runs_two(variant):
    """2x13 holds the 55 conv1 columns of a 227 input's one strip (CONV1_MAX_COLS): a 235-wide input's
    strip needs 57, so the host refuses it with the reason; a 291-wide one runs as two narrower
    strips (43 columns at most) and matches float64."""
    if SKIP is not None:
        pytest.skip(f"needs an NVIDIA GPU: {SKIP}")
    from kernels.api import make_forward
    from pipeline.stages.verify import check_forward, reference_output

    with pytest.raises(ValueError, match="235-wide input need 57"):
        make_forward(variant, 1, 227, 235, seed=2)
    fwd = make_forward(variant, 3, 251, 291, seed=2)
    x = fwd.random_input(7)
    r = check_forward(fwd, x, reference_output(fwd, x))
    assert r["nonfinite_outputs"] == 0 and r["passed"], r


@pytest.mark.gpu
def test_tf32_lbl_refuses_a_conv_its_patch_kernels_do_not_compute(monkeypatch):
    """lbl-tf32 has no general gather conv: a conv neither patch kernel takes is a clear error at
    setup, not a launch of a missing entry."""
    if SKIP is not None:
        pytest.skip(f"needs an NVIDIA GPU: {SKIP}")
    import kernels.api as api

    monkeypatch.setattr(api, "conv_cl_applies", lambda layer, in_channels: False)
    with pytest.raises(ValueError, match=r"lbl-tf32: conv conv2 5x5/1 fits neither patch kernel, and tf32 has no general"):
        api.make_forward("lbl-tf32", 1)


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["lbl-tf32", "fused-reuse-t2x5-tf32", "fused-reuse-t2x13-tf32"])
def test_tf32_kernels_round_their_input_to_nearest_tf32(variant):
    """The TF32 kernels round their FP32 input to TF32 as they stage it (cvt.rna, the rounding
    round_to_precision models): an input of FP32 values gives bit for bit the output of the same
    input rounded to TF32 on the host. Without the rounding the tensor cores would take the
    unrounded bits (they do not round to nearest), and the two outputs would differ."""
    if SKIP is not None:
        pytest.skip(f"needs an NVIDIA GPU: {SKIP}")
    import cupy

    from kernels.api import make_forward, round_to_precision

    fwd = make_forward(variant, 2, seed=8)
    x32 = cupy.random.RandomState(9).standard_normal(fwd.input_shape, dtype=cupy.float32)
    x_tf32 = cupy.asarray(round_to_precision(cupy.asnumpy(x32), "tf32"))
    assert int((x_tf32 != x32).sum()) > x32.size // 2  # FP32 values, most of them not TF32 ones
    out_fp32 = cupy.asnumpy(fwd(x32))
    out_tf32 = cupy.asnumpy(fwd(x_tf32))
    assert np.isfinite(out_fp32).all() and np.array_equal(out_fp32, out_tf32)


@pytest.mark.gpu
def test_tf32_lbl_conv2_rounds_its_input_to_nearest_tf32():
    """lbl-tf32's conv2 (ConvCL) rounds the pool1 map it stages: FP32 values in pool1's buffer give
    bit for bit the conv2 output of their TF32 rounding (the input test above only reaches conv1)."""
    if SKIP is not None:
        pytest.skip(f"needs an NVIDIA GPU: {SKIP}")
    import cupy

    from kernels.api import make_forward

    fwd = make_forward("lbl-tf32", 2, seed=8)
    x = fwd.random_input(1)
    fwd(x)  # every intermediate map in place
    i = fwd.step_layers.index("conv2")
    _, _, pool1, args, _ = fwd._steps[i]
    conv2_out = args[2]
    p32 = cupy.abs(cupy.random.RandomState(3).standard_normal(pool1.shape, dtype=cupy.float32))
    p_tf32 = fwd.encode(p32)  # rounded to nearest TF32
    assert int((p_tf32 != p32).sum()) > p32.size // 2
    outs = []
    for p in (p32, p_tf32):
        pool1[...] = p
        fwd.run_step(i, x)
        outs.append(cupy.asnumpy(conv2_out))
    assert np.isfinite(outs[0]).all() and outs[0].any() and np.array_equal(outs[0], outs[1])


def test_patch_entry_tables_match_the_kernels_templates():
    """kernels/api.py's grid tables against lbl_tc.cu's instantiations (rows, columns = CW*NT8W*8,
    channels = 48*MW for conv1, MW*MT*16 for conv2): a mismatch would leave outputs uncovered."""
    import re
    from pathlib import Path

    from kernels.api import CONV1_PATCH_ENTRIES, CONV1_PATCH_SHAPE, CONV_CL_ENTRIES

    src = (Path(__file__).parents[1] / "kernels" / "lbl_tc.cu").read_text()
    conv1 = {m[0]: tuple(map(int, m[1:])) for m in re.findall(r"^LBL_TC_CONV1\((\w+), (\d+), (\d+), (\d+), (\d+),", src, re.M)}
    conv_cl = {m[0]: tuple(map(int, m[1:])) for m in
               re.findall(r"^LBL_TC_CONV_CL\((\w+), (\d+), (\d+), (\d+), (\d+), (\d+),", src, re.M)}  # fmt: skip
    assert set(conv1) == set(CONV1_PATCH_ENTRIES) and set(conv_cl) == set(CONV_CL_ENTRIES)
    for entry, (mw, rw, cw, nt8w) in conv1.items():
        rows, cols, msplit = CONV1_PATCH_ENTRIES[entry]
        assert (rows, cols, CONV1_PATCH_SHAPE[1] // msplit) == (rw, cw * nt8w * 8, 48 * mw), entry
    for entry, (mw, mt, rw, cw, nt8w) in conv_cl.items():
        assert CONV_CL_ENTRIES[entry] == (rw, cw * nt8w * 8, mw * mt * 16), entry


def test_patch_entry_refuses_a_mismatched_tile_or_an_oversized_grid(monkeypatch):
    """The host's own check of an exported tile and of CUDA's grid limits (no GPU: the module's
    exports are stood in for)."""
    from kernels.api import Forward

    fwd = Forward.__new__(Forward)
    fwd.batch = 40000
    exported = {"e_tile": [2, 64, 96], "e_smem_bytes": [1234]}
    monkeypatch.setattr(fwd, "_exported_ints", lambda name, n=1: exported[name][:n], raising=False)
    kernel = type("K", (), {})()
    monkeypatch.setattr(fwd, "_kernel", lambda entry: kernel, raising=False)
    assert fwd._patch_entry("e", (2, 64, 96), (1, 28, 3)) == 1234 and kernel.max_dynamic_shared_size_bytes == 1234
    with pytest.raises(RuntimeError, match=r"block tile is \(2, 64, 96\), kernels/api.py's table says \(1, 64, 96\)"):
        fwd._patch_entry("e", (1, 64, 96), (1, 28, 3))
    with pytest.raises(ValueError, match="exceeds CUDA's 65535 blocks"):
        fwd._patch_entry("e", (2, 64, 96), (1, 28, 80000))
