"""Generated variants through the workflow's stage functions (GPU): the build stage's cubin loaded by
make_forward, verified and timed as the verify and time rules do, at the network's input size; an
NVRTC build at an odd size; a cubin of another size refused."""

from __future__ import annotations

import shutil

import pytest

from pipeline.core.gpu import gpu_skip_reason

SKIP = gpu_skip_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(SKIP is not None, reason=f"needs an NVIDIA GPU: {SKIP}")]
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")

# the default config's generated variants (config/config.yaml), one per kind
NAMES = ["lbl-gen", "fused-reuse-t2x7-gen-fp16", "vgg_e.first5.lbl-gen-fp16", "vgg_e.first5.fused-reuse-t2x7-gen",
         "vgg_e.first5.fused-recompute-t2x7-gen", "vgg_e.first5.fused-reuse-t4x14-gen-fp16"]  # fmt: skip


@needs_nvcc
@pytest.mark.parametrize("name", NAMES)
def test_built_generated_variant_verifies_and_times(name, tmp_path):
    from kernels.api import make_forward
    from kernels.registry import Variant
    from pipeline.core.networks import load_network
    from pipeline.stages.build import build_variant
    from pipeline.stages.time import time_variant
    from pipeline.stages.verify import verify

    cubin = tmp_path / f"{name}.cubin"
    build_variant(name, "sm_90", cubin, tmp_path / f"{name}.json", tmp_path / f"{name}.log")
    v = Variant.parse(name)
    shape = load_network(v.network).input
    res = verify(name, 3, shape.height, shape.width, str(cubin), seed=5)
    assert res["passed"], res
    t = time_variant(name, 4, str(cubin), height=shape.height, width=shape.width, warmup=2, repeats=5,
                     min_seconds=0.05, cool_below_c=None)  # fmt: skip
    assert t["us_per_image_median"] > 0 and t["useful_macs_per_image"] > 0 and t["kernels"].startswith("chain_fused")
    fwd = make_forward(name, 2, shape.height, shape.width, cubin=str(cubin))
    assert fwd.variant == v and fwd.name == name
    # the module is specific to the input size: the cubin of 224x224 (227x227) must not run at 231x199
    with pytest.raises(ValueError, match="was built from another module"):
        make_forward(name, 2, 231, 199, cubin=str(cubin))


@pytest.mark.parametrize("name", ["vgg_e.first5.fused-reuse-t4x14-gen-fp16", "lbl-gen"])
def test_generated_variant_at_an_odd_size_through_nvrtc(name):
    from pipeline.stages.verify import verify

    assert verify(name, 2, 231, 199, None, seed=3)["passed"]


def test_vendor_anchor_of_another_group():
    """vgg_e.first5.vendor-cl: the PyTorch path on VGG's group (skips without torch)."""
    from kernels.registry import vendor_available
    from pipeline.stages.verify import verify

    ok, why = vendor_available()
    if not ok:
        pytest.skip(why)
    res = verify("vgg_e.first5.vendor-cl-fp16", 2, 224, 224, None, seed=1)
    assert res["passed"] and res["output_shape"] == [2, 256, 56, 56]
