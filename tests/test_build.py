"""The build stage: ptxas report parsing on genuine nvcc 13 output, occupancy, a real nvcc run."""

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.stages.build import (
    BuildError,
    build_variant,
    find_cuobjdump,
    parse_ptxas,
    register_limited_occupancy_pct,
    tensor_core_instructions,
)

DATA = Path(__file__).parent / "data" / "ptxas"


def test_parse_ptxas_three_kernels_sm90():
    kernels = {k["name"]: k for k in parse_ptxas((DATA / "nvcc13_sm90.log").read_text())}
    assert set(kernels) == {"saxpy", "smem_sum", "spills"}
    assert kernels["saxpy"]["registers"] == 10 and kernels["saxpy"]["shared_bytes"] == 0
    assert kernels["smem_sum"]["shared_bytes"] == 4096 and kernels["smem_sum"]["registers"] == 22
    assert kernels["spills"]["stack_bytes"] == 2048
    assert all(k["arch"] == "sm_90" for k in kernels.values())


def test_parse_ptxas_spills_and_sm75_cmem_suffix():
    (k,) = parse_ptxas((DATA / "nvcc13_sm90_spill.log").read_text())
    assert (k["spill_store_bytes"], k["spill_load_bytes"], k["registers"]) == (1280, 2616, 24)
    kernels = {k["name"]: k for k in parse_ptxas((DATA / "nvcc13_sm75.log").read_text())}
    assert kernels["spills"]["registers"] == 8 and kernels["spills"]["arch"] == "sm_75"


@pytest.mark.parametrize(
    "regs, arch, expected",
    [(32, "sm_90", 100.0), (64, "sm_90", 50.0), (128, "sm_90", 25.0), (255, "sm_90", 12.5),
     (40, "sm_90", 100.0 * 51 / 64), (64, "sm_75", 100.0), (0, "sm_90", 100.0)],
)  # fmt: skip
def test_register_limited_occupancy(regs, arch, expected):
    # 40 registers -> 1280 per warp -> 65536 // 1280 = 51 of 64 warp slots (before block rounding)
    assert register_limited_occupancy_pct(regs, arch) == pytest.approx(expected)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_real_nvcc_report_matches_parser(tmp_path):
    src = tmp_path / "k.cu"
    src.write_text(
        'extern "C" __global__ void k(float* y) { __shared__ float s[256];'
        " s[threadIdx.x] = threadIdx.x; __syncthreads(); y[threadIdx.x] = s[255 - threadIdx.x]; }"
    )
    proc = subprocess.run(
        ["nvcc", "-cubin", "-arch=sm_90", "-Xptxas", "-v", str(src), "-o", str(tmp_path / "k.cubin")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    (k,) = parse_ptxas(proc.stdout + proc.stderr)
    assert k["name"] == "k" and k["shared_bytes"] == 1024 and k["registers"] > 0


SASS = Path(__file__).parent / "data" / "sass"


def test_tensor_core_count_on_recorded_sass():
    """cuobjdump -sass of tests/data/sass/probe.cu (nvcc 13.0, sm_90): one mma.sync is one HMMA."""
    counts = tensor_core_instructions((SASS / "probe_sm90.sass").read_text())
    assert counts == {"probe_fma": 0, "probe_mma": 1}


needs_tools = pytest.mark.skipif(shutil.which("nvcc") is None or find_cuobjdump() is None,
                                 reason="needs nvcc and cuobjdump (pip install -e '.[build]')")  # fmt: skip


@needs_tools
def test_tensor_core_build_records_hmma(tmp_path):
    rep = build_variant("lbl-fp16", "sm_90", tmp_path / "v.cubin", tmp_path / "v.json", tmp_path / "v.log")
    counts = {k["name"]: k["tensor_core_instructions"] for k in rep["kernels"]}
    assert all(counts[f"lbl_tc_conv_m{m}{n}"] > 0 for m in (96, 128) for n in ("", "_n32"))
    assert all(counts[e] > 0 for e in ("lbl_tc_conv1_r2", "lbl_tc_conv1_r1", "lbl_tc_conv2cl_r4", "lbl_tc_conv2cl_r1"))
    assert counts["lbl_tc_lrn"] == 0 and counts["lbl_tc_maxpool"] == 0
    assert rep["precision"] == "fp16" and rep["schema_version"] == 2


@needs_tools
def test_tf32_lbl_build_has_the_patch_convs_on_tf32_mma(tmp_path):
    """lbl-tf32: the same patch convs, on mma.sync m16n8k8 TF32 (SASS HMMA.1688.F32.TF32), no gather."""
    rep = build_variant("lbl-tf32", "sm_90", tmp_path / "v.cubin", tmp_path / "v.json", tmp_path / "v.log")
    counts = {k["name"]: k["tensor_core_instructions"] for k in rep["kernels"]}
    assert set(counts) == {"lbl_tc_conv1_r2", "lbl_tc_conv1_r1", "lbl_tc_conv2cl_r4", "lbl_tc_conv2cl_r1", "lbl_tc_lrn",
                           "lbl_tc_maxpool"}  # fmt: skip
    assert all(counts[e] > 0 for e in ("lbl_tc_conv1_r2", "lbl_tc_conv1_r1", "lbl_tc_conv2cl_r4", "lbl_tc_conv2cl_r1"))
    cuobjdump, env = find_cuobjdump()
    sass = subprocess.run([cuobjdump, "-sass", str(tmp_path / "v.cubin")], capture_output=True, text=True, env=env,
                          check=True).stdout  # fmt: skip
    assert "HMMA.1688.F32.TF32" in sass and "HMMA.16816" not in sass


@needs_tools
@pytest.mark.parametrize("variant", ["fused-reuse-t4x7-fp16", "fused-recompute-t2-bf16", "fused-reuse-t2x5-tf32"])
def test_fused_tc_builds_agree_with_the_registrys_layout(tmp_path, variant):
    """fused_tc.cu's static_assert holds the registry's shared-memory mirror (fused_tc_smem_bytes,
    fused_tc_band, conv1_patch_halves) to the kernel's layout: the build fails where they differ."""
    from kernels.registry import SMEM_LIMIT_SM90_BYTES, VARIANTS

    rep = build_variant(variant, "sm_90", tmp_path / "v.cubin", tmp_path / "v.json", tmp_path / "v.log")
    (k,) = rep["kernels"]
    # 40 bytes since the per-part conv1 barriers (perf-notes step 26, measured faster than the
    # spill-free build); more would mean the accumulators no longer fit
    assert k["spill_store_bytes"] <= 64 and k["tensor_core_instructions"] > 0
    assert dict(VARIANTS[variant].defines)["EXPECT_SMEM_BYTES"] <= SMEM_LIMIT_SM90_BYTES


@needs_tools
def test_fused_tc_build_shares_conv2_weights_across_a_cluster(tmp_path):
    """fused_tc builds run as clusters of 2 blocks (WCLUSTER) that fetch conv2's weight stages once,
    by multicast bulk copies: an sm_90a build (asked for sm_90) whose SASS holds them, the mbarrier
    waits and the cluster barriers; lbl keeps the plain target."""
    rep = build_variant("fused-reuse-t2x7-fp16", "sm_90", tmp_path / "v.cubin", tmp_path / "v.json", tmp_path / "v.log")
    assert rep["arch"] == "sm_90a" and rep["defines"]["WCLUSTER"] == 2
    cuobjdump, env = find_cuobjdump()
    sass = subprocess.run([cuobjdump, "-sass", str(tmp_path / "v.cubin")], capture_output=True, text=True, env=env,
                          check=True).stdout  # fmt: skip
    assert "UBLKCP.S.G.MULTICAST" in sass and "SYNCS.PHASECHK.TRANS64.TRYWAIT" in sass
    assert "UCGABAR_ARV" in sass and "UCGABAR_WAIT" in sass
    assert "-arch=sm_90a" in (tmp_path / "v.log").read_text().splitlines()[0]


def test_build_arch_is_sm90a_for_cluster_builds_only():
    from kernels.registry import VARIANTS, build_arch

    assert build_arch("fused-reuse-t2x5-tf32", "sm_90") == "sm_90a"
    assert build_arch("fused-recompute-t2-bf16", "sm_90a") == "sm_90a"
    assert build_arch("lbl-fp16", "sm_90") == "sm_90" and build_arch("fused-reuse-t2x7", "sm_80") == "sm_80"
    with pytest.raises(ValueError, match="sm_90a"):
        build_arch("fused-reuse-t2x7-fp16", "sm_80")
    assert all(v.define["WCLUSTER"] == 2 for v in VARIANTS.values() if v.source == "kernels/fused_tc.cu")


def test_fused_tc_band_is_lowered_only_where_the_block_would_not_fit():
    from kernels.registry import FUSED_TC_TILES_BY_PRECISION, SMEM_LIMIT_SM90_BYTES, fused_tc_band, fused_tc_smem_bytes

    want = {"fp16": {2: 5, 4: 8, (2, 7): 5, (4, 7): 5, (2, 13): 2}, "tf32": {(2, 5): 3, (1, 7): 2, (2, 13): 2}}
    want["bf16"] = want["fp16"]
    for precision, tiles in FUSED_TC_TILES_BY_PRECISION.items():
        for strategy in ("reuse", "recompute"):
            assert {t: fused_tc_band(t, strategy, precision=precision) for t in tiles} == want[precision]
            assert all(fused_tc_smem_bytes(t, strategy, precision=precision) <= SMEM_LIMIT_SM90_BYTES for t in tiles)
    for strategy in ("reuse", "recompute"):
        assert fused_tc_smem_bytes((4, 7), strategy, 8) > fused_tc_smem_bytes((4, 7), strategy, 6) > SMEM_LIMIT_SM90_BYTES
        # tf32's FP32 maps: a 2x7 tile misses the shared memory even with one pool1 row per band
        assert fused_tc_smem_bytes((2, 7), strategy, 1, "tf32") > SMEM_LIMIT_SM90_BYTES
        assert fused_tc_smem_bytes((2, 13), strategy, 2) == fused_tc_smem_bytes((2, 13), strategy, 2, conv1_cols=55)
    # reuse-2x13 (with conv2's carried row) keeps 2-row bands only by holding its one strip's 55 conv1
    # columns, not 63
    assert fused_tc_smem_bytes((2, 13), "reuse", 2, conv1_cols=63) > SMEM_LIMIT_SM90_BYTES
    # tf32 2x13 fits only split over a cluster by conv2 group (fused_tc.cu GROUP_SPLIT: 64 conv1, 48 pool1
    # and 128 conv2 channels a block, with the peer's 2 LRN2 channels), and reuse's 2-row bands only
    # with a 2-deep conv1 ring
    for strategy in ("reuse", "recompute"):
        assert fused_tc_smem_bytes((2, 13), strategy, 1, "tf32", group_split=False) > 1.5 * SMEM_LIMIT_SM90_BYTES
    assert fused_tc_smem_bytes((2, 13), "reuse", 2, "tf32", conv1_stages=3) > SMEM_LIMIT_SM90_BYTES
    assert fused_tc_smem_bytes((2, 13), "reuse", 2, "tf32", conv1_stages=2) <= SMEM_LIMIT_SM90_BYTES
    # reuse holds conv2's carried row on top (2C+1 pixels x 264 halves; 4x7: 15 x 528 bytes)
    assert fused_tc_smem_bytes((4, 7), "reuse") - fused_tc_smem_bytes((4, 7), "recompute") == 15 * 528
    # clusters add a full and an empty mbarrier per conv2 stage and group (4 stages at 2x7, 3 at 4x7)
    # and the `phase 1 done` barrier
    assert fused_tc_smem_bytes((2, 7), "reuse") - fused_tc_smem_bytes((2, 7), "reuse", wcluster=1) == (2 * 2 * 4 + 1) * 8
    assert fused_tc_smem_bytes((4, 7), "reuse") - fused_tc_smem_bytes((4, 7), "reuse", wcluster=1) == (2 * 2 * 3 + 1) * 8


@needs_tools
def test_tensor_core_variant_without_hmma_fails_its_build(tmp_path, monkeypatch):
    """A variant that claims fp16 but compiles the FP32 CUDA-core source must not build."""
    import dataclasses

    from kernels import registry

    fake = dataclasses.replace(registry.VARIANTS["lbl"], precision="fp16")
    monkeypatch.setitem(registry.VARIANTS, "lbl", fake)
    with pytest.raises(BuildError, match="no HMMA"):
        build_variant("lbl", "sm_90", tmp_path / "v.cubin", tmp_path / "v.json", tmp_path / "v.log")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_generated_variant_builds_its_module(tmp_path):
    """A generated variant: the module kernels.chain writes at the network's input size lands beside
    the cubin, nvcc builds it with the hand kernels' flags, and the report carries the layout."""
    import json

    from kernels.chain import chain_source
    from kernels.registry import group_chain

    name = "vgg_e.first5.lbl-gen"
    rep = build_variant(name, "sm_90", tmp_path / f"{name}.cubin", tmp_path / f"{name}.json", tmp_path / f"{name}.log")
    layers, s_in = group_chain("vgg_e", "first5")
    assert (tmp_path / f"{name}.cu").read_text() == chain_source(layers, s_in, "lbl", None, "fp32")
    assert (s_in.height, s_in.width) == (224, 224) and (tmp_path / f"{name}.cubin").stat().st_size > 0
    assert "-std=c++17" in (tmp_path / f"{name}.log").read_text().splitlines()[0]
    g = rep["generated"]
    assert (rep["network"], rep["group"], rep["strategy"], rep["precision"]) == ("vgg_e", "first5", "lbl", "fp32")
    assert g["layers"] == ["conv1_1", "relu3_1"] and g["input"] == [3, 224, 224]
    assert g["entries"] == [f"chain_fused_{i}" for i in range(7)]  # 5 convs (ReLU in place) and 2 pools
    kernels = {k["name"]: k for k in rep["kernels"]}
    assert set(kernels) == set(g["entries"])
    for k in kernels.values():
        assert k["registers"] > 0 and 0 < k["dynamic_shared_bytes"] <= 227 * 1024 and k["blocks_per_image"] > 0
        assert k["dynamic_shared_bytes"] == g["kernels"][k["name"]]["dynamic_shared_bytes"]
    assert g["smem_bytes"] == max(k["dynamic_shared_bytes"] for k in kernels.values())
    rings = g["kernels"]["chain_fused_0"]["rings"]
    assert rings[0]["layer"] == "input" and rings[1]["layer"] == "conv1_1" and rings[1]["channels"] == 64
    assert json.loads((tmp_path / f"{name}.json").read_text())["variant"] == name


@needs_tools
def test_generated_16_bit_variant_records_hmma(tmp_path):
    name = "vgg_e.first5.fused-reuse-t2x14-gen-fp16"
    rep = build_variant(name, "sm_90", tmp_path / "v.cubin", tmp_path / "v.json", tmp_path / "v.log")
    (k,) = rep["kernels"]
    assert k["name"] == "chain_fused" and k["tensor_core_instructions"] > 0
    assert k["dynamic_shared_bytes"] == rep["generated"]["smem_bytes"] > 0 and rep["tile"] == "2x14"
    assert (tmp_path / "v.cu").read_text().startswith("#define PREC 1\n")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_nvcc_cubin_builds_an_sm90a_fallback_once_per_source_and_defines(tmp_path, monkeypatch):
    """pipeline/core/gpu.py nvcc_cubin: the run-time build of a cluster variant (CuPy's NVRTC call
    cannot target sm_90a), cached by source, headers, defines and arch."""
    import tempfile

    from kernels.registry import VARIANTS
    from pipeline.core.gpu import nvcc_cubin

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    v = VARIANTS["fused-recompute-t2-fp16"]
    first = nvcc_cubin(v.source, v.defines, "sm_90a")
    assert first.parent == tmp_path / "fused-layer-cubins" and first.stat().st_size > 0
    stamp = first.stat().st_mtime_ns
    assert nvcc_cubin(v.source, v.defines, "sm_90a") == first and first.stat().st_mtime_ns == stamp
    other = dict(v.defines) | {"PREC": 2}
    assert nvcc_cubin(v.source, tuple(other.items()), "sm_90a") != first
    assert not list(first.parent.glob("*.tmp"))  # written under a temporary name, then moved


def fused_tc_sass_with(tmp_path, name: str, overrides: dict[str, int]) -> tuple[str, str, tuple]:
    """The registry's fused_tc build ``name`` with ``overrides`` (pipeline.revision.defines_with, as
    pipeline.bench --set builds it), compiled by the real nvcc for sm_90a: (SASS, ptxas log, defines)."""
    from pipeline.core.nvcc import REPO, nvcc_command
    from pipeline.revision import defines_with

    cuobjdump, env = find_cuobjdump()
    defines = defines_with(name, overrides)
    cubin = tmp_path / f"{name}-{'-'.join(f'{k}{v}' for k, v in overrides.items())}.cubin"
    r = subprocess.run(nvcc_command(REPO / "kernels/fused_tc.cu", [f"-D{k}={v}" for k, v in defines], "sm_90a", cubin),
                       check=True, capture_output=True, text=True)  # fmt: skip
    sass = subprocess.run([cuobjdump, "-sass", str(cubin)], capture_output=True, text=True, env=env, check=True).stdout
    return sass, r.stderr, defines


@needs_tools
def test_ring_wait_scope_knob_drops_the_l1_invalidates(tmp_path):
    """RING_WAIT_CLUSTER=0 (the default since perf-notes step 29; 1 is step 28's build): the ring's
    waits at CTA scope compile without the CCTL.IVALL that each cluster-scope wait carries."""
    ivall = {}
    for scope in (1, 0):
        sass, _, _ = fused_tc_sass_with(tmp_path, "fused-reuse-t2x7-fp16", {"RING_WAIT_CLUSTER": scope})
        ivall[scope] = sass.count("CCTL.IVALL")
    assert ivall[0] < ivall[1]


@needs_tools
@pytest.mark.parametrize("name", ["fused-reuse-t4x7-fp16", "fused-reuse-t4x7-bf16", "fused-reuse-t2x5-tf32"])
def test_conv2_wgmma_knob_builds_warpgroup_mmas(tmp_path, name):
    """CONV2_WGMMA=1 (perf-notes steps 28e and 29; the registry's 16-bit builds): conv2 on wgmma at
    every tensor-core precision, sm_90a: the SASS holds HGMMA (which the build stage counts as tensor-core instructions, beside conv1's
    HMMA), and the build spills at most a few bytes."""
    from pipeline.stages.build import parse_ptxas

    sass, log, _ = fused_tc_sass_with(tmp_path, name, {"CONV2_WGMMA": 1})
    precision = name.rsplit("-", 1)[1]
    assert sass.count("HGMMA.64x128x" + ("8.F32.TF32" if precision == "tf32" else "16.F32")) >= 3
    assert "HMMA." in sass  # conv1 stays on mma.sync
    assert all(k["spill_store_bytes"] <= 16 for k in parse_ptxas(log))


@needs_tools
@pytest.mark.parametrize("name", ["fused-reuse-t4x7-fp16", "fused-reuse-t2x7-bf16", "fused-recompute-t4x7-fp16"])
def test_conv1_s2d_knob_builds_shared_memory_warpgroup_mmas_without_spills(tmp_path, name):
    """CONV1_S2D=1 (perf-notes step 30): conv1 over the space-to-depth input on wgmma with both
    operands read by descriptor (HGMMA 64x48, its A from shared memory: no register operand
    R in the instruction), beside conv2's wgmma, so no mma.sync is left; 0 bytes of spill at the
    default ring depth and the patch rows in flight it was measured with (2; the default 9 of the
    kx16 patch, perf-notes step 31, spills here)."""
    import re

    from pipeline.stages.build import parse_ptxas

    sass, log, _ = fused_tc_sass_with(tmp_path, name, {"CONV1_S2D": 1, "CONV1_PATCH_RB": 2})
    conv1 = re.findall(r"HGMMA\.64x48x16\.F32[^;]*", sass)
    assert len(conv1) >= 3 and not any(re.search(r"\bR\d+\b", i.split(",")[1]) for i in conv1)
    assert "HMMA." not in sass
    assert all(k["spill_store_bytes"] == 0 for k in parse_ptxas(log))


@needs_tools
def test_conv1_patch_knobs_change_the_patch_loads_they_name(tmp_path):
    """conv1's patch knobs: the default since perf-notes step 31 has CONV1_PATCH_PREFETCH=1, the L2
    prefetches of the next chunk's rows (CCTL.E.PF2), which =0 leaves out; CONV1_PATCH_VEC=1 (off,
    step 30) loads and stores the input patch in 16-byte chunks (LDG.E.128, no 2-byte LDG.E.U16 or
    STS.U16 left). The default (9 rows in flight per warp) and VEC at 4 rows do not spill."""
    from pipeline.stages.build import parse_ptxas

    base, base_log, _ = fused_tc_sass_with(tmp_path, "fused-reuse-t4x7-fp16", {})
    vec, vec_log, _ = fused_tc_sass_with(tmp_path, "fused-reuse-t4x7-fp16", {"CONV1_PATCH_VEC": 1, "CONV1_PATCH_RB": 4})
    no_pf, _, _ = fused_tc_sass_with(tmp_path, "fused-reuse-t4x7-fp16", {"CONV1_PATCH_PREFETCH": 0})
    assert "LDG.E.U16" in base and "LDG.E.128" not in base and "CCTL.E.PF2" in base
    assert "LDG.E.128" in vec and "LDG.E.U16" not in vec and "STS.U16" not in vec
    assert "CCTL.E.PF2" not in no_pf
    assert all(k["spill_store_bytes"] == 0 for k in parse_ptxas(vec_log) + parse_ptxas(base_log))


@needs_tools
def test_conv1_ablation_builds_leave_out_what_they_name(tmp_path):
    """CONV1_ABLATE (diagnostic, wrong results by design, perf-notes step 30): 4 leaves out conv1's
    products (no HMMA left at 4x7 FP16, whose conv2 is on wgmma), 2 its ring's part barriers (the
    named barriers go: ptxas reserves 1 barrier instead of 16)."""
    no_mma, _, _ = fused_tc_sass_with(tmp_path, "fused-reuse-t4x7-fp16", {"CONV1_ABLATE": 4})
    assert "HMMA." not in no_mma and "HGMMA." in no_mma
    _, log, _ = fused_tc_sass_with(tmp_path, "fused-reuse-t4x7-fp16", {"CONV1_ABLATE": 2})
    _, base_log, _ = fused_tc_sass_with(tmp_path, "fused-reuse-t4x7-fp16", {})
    assert "used 1 barriers" in log and "used 16 barriers" in base_log


@needs_tools
def test_conv1_s2d_knob_is_refused_where_it_has_no_build(tmp_path):
    """CONV1_S2D needs 16-bit values and the sm_90a (cluster) build, and has its own patch load: a
    TF32 build, a build without clusters and one with a patch knob that does not apply stop at the
    kernel's #error with the reason, not at a wrong result."""
    from pipeline.core.nvcc import REPO, nvcc_command
    from pipeline.revision import defines_with

    for name, extra in (("fused-reuse-t1x7-tf32", {}), ("fused-reuse-t4x7-fp16", {"WCLUSTER": 1, "CONV2_WGMMA": 0}),
                        ("fused-reuse-t4x7-fp16", {"CONV1_PATCH_PREFETCH": 1})):  # fmt: skip
        defines = defines_with(name, {"CONV1_S2D": 1, **extra})
        r = subprocess.run(nvcc_command(REPO / "kernels/fused_tc.cu", [f"-D{k}={v}" for k, v in defines], "sm_90a",
                                        tmp_path / "k.cubin"), capture_output=True, text=True)  # fmt: skip
        assert r.returncode != 0 and "CONV1_S2D" in r.stderr, (name, extra)


@needs_tools
def test_conv2_start_knob_drops_the_gpu_membar_per_step(tmp_path):
    """CONV2_START_CLUSTER_SYNC=0 (perf-notes step 28d; the default since step 29): a conv2 phase starts on a `phase 1 done`
    mbarrier instead of a cluster barrier, so the loop body loses the barrier's MEMBAR.ALL.GPU (the
    kernel's first and last cluster barriers keep theirs), and the layout grows by that barrier's 8
    bytes (EXPECT_SMEM_BYTES recomputed by defines_with; the static_assert checks it)."""
    membar, smem = {}, {}
    for sync in (1, 0):
        sass, _, defines = fused_tc_sass_with(tmp_path, "fused-reuse-t2x7-fp16", {"CONV2_START_CLUSTER_SYNC": sync})
        smem[sync] = dict(defines)["EXPECT_SMEM_BYTES"]
        membar[sync] = (sass.count("MEMBAR.ALL.GPU"), sass.count("UCGABAR_ARV"))
    assert smem[0] == smem[1] + 8
    assert membar[0][1] == 2 < membar[1][1]  # the kernel's first and last cluster barriers only
    assert membar[0][0] < membar[1][0]
