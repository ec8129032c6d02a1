"""The variant registry (CPU only): imports without CuPy, names follow the contract, sources compile."""

from __future__ import annotations

import concurrent.futures as cf
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kernels.registry import (
    FUSED_TILES,
    PRECISIONS,
    TENSOR_CORE_PRECISIONS,
    SMEM_LIMIT_SM90_BYTES,
    VARIANTS,
    Strategy,
    Variant,
    build_arch,
    check_fits,
    fused_smem_bytes,
    fused_variant_name,
    nvcc_flags,
)
from pipeline.core.tiles import tile_label, tile_sides

ROOT = Path(__file__).resolve().parents[1]
NAME_RE = re.compile(r"^(lbl|vendor(-cl|-compile)?|fused-(reuse|recompute)-t\d+(x\d+)?)(-(tf32|fp16|bf16))?$")


def test_registry_imports_without_cupy():
    """The CPU machine has no CuPy: block it and import the registry in a fresh interpreter."""
    code = "import sys; sys.modules['cupy'] = None; import kernels.registry as r; print(len(r.VARIANTS))"
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert int(p.stdout) == len(VARIANTS)


def test_api_imports_without_cupy():
    code = "import sys; sys.modules['cupy'] = None; import kernels.api, pipeline.stages.verify, pipeline.core.gpu"
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_names_follow_contract():
    assert {"lbl", "vendor"} <= set(VARIANTS)
    for name, v in VARIANTS.items():
        assert NAME_RE.match(name), name
        assert v.name == name
        if v.strategy in ("reuse", "recompute"):
            suffix = "" if v.precision == "fp32" else f"-{v.precision}"
            assert name == f"fused-{v.strategy}-t{tile_label(v.tile)}{suffix}"
            tc = "tc_" if v.precision in TENSOR_CORE_PRECISIONS else ""
            assert v.entries == (f"fused_{tc}{v.strategy}_t{tile_label(v.tile)}",)
            assert (v.define["TILE_Y"], v.define["TILE_X"]) == tile_sides(v.tile)
        else:
            assert v.tile is None
    assert len(FUSED_TILES) >= 2
    for t in FUSED_TILES:
        assert fused_variant_name("reuse", t) in VARIANTS and fused_variant_name("recompute", t) in VARIANTS
    assert "fused-reuse-t2x7" in VARIANTS and VARIANTS["fused-reuse-t2x7"].tile == (2, 7)


def test_parse_is_the_inverse_of_name():
    for name, v in VARIANTS.items():
        p = Variant.parse(name)
        assert (p.name, p.strategy, p.tile, p.precision, p.network, p.group) == (
            name, v.strategy, v.tile, v.precision, v.network, v.group)
        assert p.record() == v.record() and p.record()["variant"] == name
    # names of archived runs, and a precision suffix (the field is ready for the tensor-core variants)
    assert Variant.parse("fused-recompute-t2x7").tile == (2, 7)
    assert Variant.parse("fused-reuse-t4").record() == {"variant": "fused-reuse-t4", "network": "alexnet",
        "group": "front", "strategy": "reuse", "tile": "4", "precision": "fp32", "impl": ""}  # fmt: skip
    assert Variant(Strategy.LBL, precision="fp16").name == "lbl-fp16" if "fp16" in PRECISIONS else True
    for bad in ("fused-reuse", "fused-reuse-tx", "reuse-t4", "fused-copy-t4", "lbl-fp64", ""):
        with pytest.raises(ValueError, match="variant name"):
            Variant.parse(bad)


def test_rank_orders_families_then_tiles():
    names = ["vendor", "fused-recompute-t2", "fused-reuse-t2x7", "fused-reuse-t2", "lbl", "fused-reuse-t4"]
    assert sorted(names, key=lambda n: Variant.parse(n).rank) == [
        "lbl", "fused-reuse-t2", "fused-reuse-t2x7", "fused-reuse-t4", "fused-recompute-t2", "vendor"]


def test_sources_exist_and_flags():
    for v in VARIANTS.values():
        if v.strategy == "vendor":
            assert v.source is None and v.entries == ()
            continue
        assert (ROOT / v.source).is_file(), v.source
        text = (ROOT / v.source).read_text()
        for e in v.entries:  # a literal entry, or the fused file's pasted name
            assert e in text or "FUSED_ENTRY" in text or "FTC_ENTRY" in text, e
        assert nvcc_flags(v) == [f"-D{k}={val}" for k, val in v.defines]


def test_smem_fits_and_grows_with_tile():
    for strategy in ("reuse", "recompute"):
        sizes = [fused_smem_bytes(t, strategy) for t in FUSED_TILES if isinstance(t, int)]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
        assert all(fused_smem_bytes(t, strategy) <= SMEM_LIMIT_SM90_BYTES for t in FUSED_TILES)
    # reuse carries a conv2 row the recompute kernel does not need
    assert fused_smem_bytes(4, "reuse") > fused_smem_bytes(4, "recompute")


def test_check_fits_refuses_big_tile_clearly():
    with pytest.raises(ValueError, match=r"fused-reuse-t6 needs \d+ bytes of shared memory"):
        check_fits(6, "reuse")
    for t in FUSED_TILES:
        check_fits(t, "reuse")
    # 2x7 fits only with 2-row chunks and the lean input patch (registry.FUSED_CHUNK_LAYOUT)
    assert fused_smem_bytes((2, 7), "reuse", chunk_rows=3, lean_input=False) > SMEM_LIMIT_SM90_BYTES
    with pytest.raises(ValueError, match=r"fused-reuse-t3x9 needs \d+ bytes"):
        check_fits((3, 9), "reuse")
    with pytest.raises(ValueError, match="strategy"):
        fused_smem_bytes(2, "lbl")


def _compile(name: str, tmp: Path) -> tuple[str, int, str]:
    v = VARIANTS[name]
    cmd = ["nvcc", "-cubin", f"-arch={build_arch(v, 'sm_90')}", "-O3", "-std=c++17", "-Xptxas", "-v", f"-I{ROOT / 'kernels'}",
           *nvcc_flags(v), str(ROOT / v.source), "-o", str(tmp / f"{name}.cubin")]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True)
    return name, p.returncode, p.stdout + p.stderr


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_every_source_compiles_for_sm90(tmp_path):
    """Also checks fused_smem_bytes: the build passes it as EXPECT_SMEM_BYTES to a static_assert."""
    names = [n for n, v in VARIANTS.items() if v.source]
    with cf.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda n: _compile(n, tmp_path), names))
    for name, rc, log in results:
        assert rc == 0, f"{name}:\n{log[-2000:]}"
        compiled = set(re.findall(r"Compiling entry function '(\w+)'", log))
        assert set(VARIANTS[name].entries) <= compiled, (name, compiled)
        # fused_tc: up to 56 bytes since the per-part conv1 barriers, measured faster than the
        # spill-free build (perf-notes step 26); reuse-2x13-tf32 (split, wgmma, CONV1_KX12) 248 bytes,
        # its spill stores and loads all ahead of the first product in the SASS, measured 0.941x the
        # time of the build without CONV1_KX12 (44 bytes; perf-notes step 34f); every other source: none
        allowed = {"fused-reuse-t2x13-tf32": 256}.get(name, 64 if VARIANTS[name].source == "kernels/fused_tc.cu" else 0)
        spills = [int(b) for b in re.findall(r"(\d+) bytes spill stores", log)]
        assert max(spills, default=0) <= allowed, f"{name} spills:\n{log}"


GEN_NAMES = {
    "lbl-gen": ("alexnet", "front", "lbl", None, "fp32"),
    "fused-reuse-t2x14-gen": ("alexnet", "front", "reuse", (2, 14), "fp32"),
    "fused-reuse-t2x14-gen-fp16": ("alexnet", "front", "reuse", (2, 14), "fp16"),
    "fused-recompute-t2-gen-bf16": ("alexnet", "front", "recompute", 2, "bf16"),
    "vgg_e.first5.lbl-gen-fp16": ("vgg_e", "first5", "lbl", None, "fp16"),
    "vgg_e.first5.fused-reuse-t2x14-gen-fp16": ("vgg_e", "first5", "reuse", (2, 14), "fp16"),
    "vgg_e.first5.vendor-cl-fp16": ("vgg_e", "first5", "vendor", None, "fp16"),
    "vgg_e.first5.vendor": ("vgg_e", "first5", "vendor", None, "fp32"),
}


def test_generated_and_other_group_names_round_trip():
    from kernels.registry import variant

    for name, (net, group, strategy, tile, precision) in GEN_NAMES.items():
        v = Variant.parse(name)
        assert (v.network, v.group, v.strategy, v.tile, v.precision) == (net, group, strategy, tile, precision)
        assert v.name == name and v.record()["variant"] == name
        assert v.generated == ("-gen" in name)
        assert variant(name).name == name
        assert (v.network, v.group) == (v.record()["network"], v.record()["group"])
    assert variant("fused-reuse-t2x7").source == "kernels/fused.cu"  # hand-written: the registry's recipe
    for bad, msg in (("vgg_e.first5.lbl", "hand-written kernels exist for alexnet.front only"),
                     ("alexnet.front.lbl-gen", "for a group other than alexnet.front"),
                     ("vgg_e.lbl-gen", "expected <network>.<group>.<variant>"), ("vendor-gen", "variant name"),
                     ("lbl-gen-fp64", "variant name")):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            Variant.parse(bad)
    for bad, msg in (("resnet.g.lbl-gen", "no config/networks/resnet.yaml"),
                     ("vgg_e.first9.lbl-gen", "no fusion group 'first9' under networks.vgg_e.groups; allowed: first5"),
                     ("fused-reuse-t6", "is not built")):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            variant(bad)
    assert variant("vgg_e.g2.lbl-gen", {"vgg_e": {"groups": {"g2": ["conv1_1", "pool1"]}}}).group == "g2"


def test_archived_names_still_parse():
    """Every variant folder and record of reports/archive reads back to its own name."""
    import json

    archive = ROOT / "reports" / "archive"
    names = {p.name for p in archive.glob("*/*/*/*") if p.is_dir() and p.parent.name in ("alexnet", "vgg_e")}
    names |= {json.loads(p.read_text()).get("variant") for p in archive.glob("*/build/*/*.json")} - {None}
    assert len(names) >= 10
    for name in names:
        v = Variant.parse(name)
        assert v.name == name
        # the hand-written kernels' names carry no network prefix; other groups' names do
        assert (v.network, v.group) == ("alexnet", "front") or name.startswith(f"{v.network}.{v.group}.")


def test_generated_rank_sits_beside_the_hand_written():
    names = ["vendor-cl", "fused-reuse-t2x7-gen", "fused-reuse-t2x7", "lbl-gen", "lbl", "fused-recompute-t2x7-gen"]
    assert sorted(names, key=lambda n: Variant.parse(n).rank) == [
        "lbl", "lbl-gen", "fused-reuse-t2x7", "fused-reuse-t2x7-gen", "fused-recompute-t2x7-gen", "vendor-cl"]


def test_group_chain_at_the_network_size_and_another():
    from kernels.registry import group_chain

    layers, s = group_chain("vgg_e", "first5")
    assert (layers[0].name, layers[-1].name, (s.channels, s.height, s.width)) == ("conv1_1", "relu3_1", (3, 224, 224))
    layers, s = group_chain("alexnet", "front", 231, 199)
    assert (layers[0].name, layers[-1].name, (s.height, s.width)) == ("conv1", "pool2", (231, 199))


def test_weight_stages_pack_each_groups_stage_contiguously_in_the_rings_layout():
    """kernels/api.py pack_weight_stages: what one bulk copy of fused_tc.cu's cluster ring fetches is
    one group's k stage, rows padded as the ring pads them (conv2 at fp16: 128 rows x (48 + 8))."""
    import numpy as np

    from kernels.api import pack_weight_stages

    rows = np.arange(256 * 1200, dtype=np.float32).reshape(256, 1200) + 1
    packed = pack_weight_stages(rows, groups=2, stage_values=48, pad_values=8)
    assert packed.shape == (2, 25, 128, 56) and packed.flags.c_contiguous
    g, t, r, j = 1, 7, 93, 41
    assert packed[g, t, r, j] == rows[g * 128 + r, t * 48 + j]
    assert not packed[..., 48:].any() and np.count_nonzero(packed) == rows.size
    tf32 = pack_weight_stages(rows, groups=2, stage_values=24, pad_values=4)  # FP32 values: 2 slots each
    assert tf32.shape == (2, 50, 128, 28) and tf32[0, 49, 5, 23] == rows[5, 49 * 24 + 23]
    with pytest.raises(ValueError, match="stages of 48"):
        pack_weight_stages(rows[:, :1190], groups=2, stage_values=48, pad_values=8)


def test_pack_weight_stages_core_is_wgmmas_core_matrix_layout():
    """kernels/api.py pack_weight_stages_core (fused_tc.cu CONV2_WGMMA): a group's stage as core
    matrices of 8 rows x 16 bytes, k-fastest, so the descriptor's LBO (next core matrix along k) is
    128 bytes and its SBO (next 8 rows) 768: value (row n, k j) of a stage at byte
    (n // 8) * 768 + (j // unit) * 128 + (n % 8) * 16 + (j % unit) * value bytes."""
    import numpy as np

    from kernels.api import pack_weight_stages_core

    rows = np.arange(256 * 1200, dtype=np.float32).reshape(256, 1200) + 1
    for stage, unit, nbytes in ((48, 8, 2), (24, 4, 4)):  # fp16/bf16, tf32
        packed = pack_weight_stages_core(rows, groups=2, stage_values=stage, unit_values=unit)
        assert packed.shape == (2, 1200 // stage, 16, 6, 8, unit) and packed.flags.c_contiguous
        per_stage = packed.reshape(2, 1200 // stage, -1)
        for g, s, n, j in ((1, 7, 93, 41 % stage), (0, 1200 // stage - 1, 5, stage - 1), (1, 0, 127, 0)):
            byte = (n // 8) * 768 + (j // unit) * 128 + (n % 8) * 16 + (j % unit) * nbytes
            assert per_stage[g, s, byte // nbytes] == rows[g * 128 + n, s * stage + j]
    with pytest.raises(ValueError, match="core matrices"):
        pack_weight_stages_core(rows[:250], groups=2, stage_values=48, unit_values=8)


def test_pack_weights_s2d_turns_conv1_into_a_3x3_convolution_over_the_space_to_depth_input():
    """kernels/api.py pack_weights_s2d (fused_tc.cu CONV1_S2D): AlexNet's conv1 (11x11, stride 4)
    equals, at every output pixel, the packed rows times the input's 4x4 space-to-depth
    S(Y, X, 16c + 4a + b) = x(c, 4Y + a, 4X + b) gathered over the 3x3 (dy, dx) window, k =
    (3 dy + dx) * 48 + q: 432 values, zero where 4 dy + a or 4 dx + b reaches 11."""
    import numpy as np

    from kernels.api import pack_weights_s2d

    rng = np.random.default_rng(7)
    w, x = rng.standard_normal((96, 3, 11, 11)), rng.standard_normal((3, 51, 43))
    packed = pack_weights_s2d(w)
    assert packed.shape == (96, 432) and packed.dtype == np.float32
    xp = np.zeros((3, 52, 44))
    xp[:, :51, :43] = x  # the last row and column of a 4x4 cell: under zero weights only
    s2d = xp.reshape(3, 13, 4, 11, 4).transpose(1, 3, 0, 2, 4).reshape(13, 11, 48)
    for oy, ox in ((0, 0), (10, 8), (3, 5)):
        direct = np.einsum("mcij,cij->m", w, x[:, 4 * oy : 4 * oy + 11, 4 * ox : 4 * ox + 11])
        window = s2d[oy : oy + 3, ox : ox + 3].reshape(-1)
        np.testing.assert_allclose(packed @ window, direct, rtol=1e-5, atol=1e-5)
    assert not packed.reshape(96, 3, 3, 3, 4, 4)[:, 2, :, :, 3, :].any()  # ky = 11
    with pytest.raises(ValueError, match="square"):
        pack_weights_s2d(w[..., :7])


def test_fused_tc_layout_of_its_defines_is_the_registrys():
    """fused_tc_smem_bytes_of reads a build's -D values back into its layout (pipeline.bench --set
    recomputes EXPECT_SMEM_BYTES with it): for every registry build it gives the registry's number."""
    from kernels.registry import fused_tc_smem_bytes_of

    builds = [v for v in VARIANTS.values() if v.source == "kernels/fused_tc.cu"]
    assert builds and all(fused_tc_smem_bytes_of(v.define) == v.define["EXPECT_SMEM_BYTES"] for v in builds)
    two = next(v for v in builds if v.name == "fused-reuse-t2x7-fp16").define
    # without clusters: no ring barriers (2 groups x 4 stages x full and empty) nor `phase 1 done`
    assert fused_tc_smem_bytes_of(two | {"WCLUSTER": 1}) == two["EXPECT_SMEM_BYTES"] - (2 * 2 * 4 + 1) * 8


def test_fused_tc_conv1_columns_held_and_needed():
    """A tile as wide as AlexNet's pool2 map holds only its one strip's conv1 columns (fused_tc.cu
    CONV1_MAX_COLS); the columns a map's strips need follow the kernel's balanced strips: a 227 input
    (pool1 27 wide) needs 55 in one 13-wide strip and 35 in 7 + 6; pool1 28 wide (inputs 235-242)
    needs 57, more than 2x13 holds; pool1 35 (input 291) cuts 2x13 into strips of 9 and 8 (43)."""
    from kernels.registry import VARIANTS, fused_tc_conv1_cols, fused_tc_conv1_cols_needed

    assert fused_tc_conv1_cols((2, 13)) == 55 and fused_tc_conv1_cols((4, 7)) == 39 and fused_tc_conv1_cols(2) == 19
    assert [fused_tc_conv1_cols_needed((2, 13), w) for w in (27, 28, 35)] == [55, 57, 43]
    assert [fused_tc_conv1_cols_needed((4, 7), w) for w in (27, 28)] == [35, 35]
    assert fused_tc_conv1_cols_needed(2, 27) == 19 == fused_tc_conv1_cols(2)  # an interior strip needs all it holds
    assert VARIANTS["fused-reuse-t2x13-fp16"].define["CONV1_MAX_COLS"] == 55
    assert "CONV1_MAX_COLS" not in VARIANTS["fused-reuse-t4x7-fp16"].define
