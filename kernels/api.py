"""The documented Python API of the kernels: build a forward pass of a variant's fusion group.

``make_forward(variant, batch, height, width, params, cubin, seed)`` returns a :class:`Forward`
(the hand-written AlexNet conv1..pool2 kernels, and the PyTorch anchors of any configured group) or,
for a generated variant (``lbl-gen``, ``vgg_e.first5.fused-reuse-t2x14-gen-fp16``), a
:class:`kernels.chain.ChainForward`; both are
a callable that launches the variant's kernels on the current CuPy stream (no sync) and writes a
preallocated output it returns. Measurement code (CUDA events, ncu, NVML) is built on top of
exactly this. CuPy (and torch, for ``vendor``) are imported lazily, so this module imports on a
CPU-only machine.

Layer hyper-parameters (strides, pads, groups, LRN constants) come from
``config/networks/alexnet.yaml``; batch, height and width are run-time arguments. Weights are
packed once, k-major (``w[k][out_channel]``, K padded with zero rows to a multiple of 16), the
layout both the lbl implicit GEMM and the fused kernel stream through shared memory.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kernels.registry import (
    FUSED_RM,
    GROUP,
    NETWORK,
    FUSED_THREADS,
    FUSED_TC_CONV2_STAGE_SLOTS_DEFAULT,
    Variant,
    check_fits,
    fused_smem_bytes,
    fused_tc_conv1_cols_needed,
    fused_tc_smem_bytes_of,
    group_chain,
    tc_value_slots,
    vendor_available,
    variant as lookup_variant,
)
from kernels.maps import (  # noqa: F401 - re-exported: the API's documented names
    STORAGE_DTYPES,
    StoredMaps,
    _to_host,
    bf16_bits_to_float32,
    float32_to_bf16_bits,
    random_params,
    round_to_precision,
    torch_precision,
)
from pipeline.core.networks import Layer, output_shape
from pipeline.core.tiles import tile_sides

K_ALIGN = 16  # the FP32 kernels' K stage depth
TC_K_ALIGN = 32  # the tensor-core kernels' K stage depth
LBL_THREADS = 256
LBL_BN = 128  # pixels per lbl conv block tile
LBL_BN_SMALL = 32  # the tensor-core lbl conv's small-batch tile (entries ``_n32``)
LBL_MIN_STAGES_PER_SPLIT = 4  # split-K keeps at least this many K stages per block
LBL_SMALL_BLOCKS_PER_SM = 2  # split-K fills this many small-tile blocks per SM (their launch bounds)
LRN_MIN_CHANNELS_PER_CHUNK = 4
# conv1 from a shared-memory input patch (kernels/conv1_patch.cuh): the one conv shape it computes,
# (in channels, out channels, kernel, stride, pad, groups), and its entries in lbl_tc.cu as
# entry -> (output rows, output columns, blocks per pixel tile along the channels).
CONV1_PATCH_SHAPE = (3, 96, 11, 4, 0, 1)
CONV1_PATCH_KX = 16  # kx padded to 16: one input row segment per k16 step (two k8 steps at TF32)
CONV1_PATCH_ENTRIES = {"lbl_tc_conv1_r2": (2, 64, 1), "lbl_tc_conv1_r1": (1, 64, 2)}
# conv2 from a channels-last patch (lbl_tc.cu ConvCL): (in channels per group, kernel, stride, pad),
# and its entries as entry -> (output rows, output columns, output channels) per block.
CONV_CL_SHAPE = (48, 5, 1, 2)
CONV_CL_ENTRIES = {"lbl_tc_conv2cl_r4": (4, 32, 128), "lbl_tc_conv2cl_r1": (1, 32, 32)}


def group_layers() -> tuple[Layer, ...]:
    """The hand-written kernels' group (AlexNet conv1..pool2) as the network file describes it."""
    return group_chain(NETWORK, GROUP)[0]


def _layer(layers: tuple[Layer, ...], name: str) -> Layer:
    return next(l for l in layers if l.name == name)


def pack_weights(w: np.ndarray) -> np.ndarray:
    """(out, in/g, k, k) -> k-major (Kpad, out) float32, K = in/g*k*k padded with zero rows to 16."""
    out_c = w.shape[0]
    k = int(np.prod(w.shape[1:]))
    kpad = -(-k // K_ALIGN) * K_ALIGN
    packed = np.zeros((kpad, out_c), np.float32)
    packed[:k] = np.asarray(w, np.float32).reshape(out_c, k).T
    return packed


def pack_weight_stages(rows: np.ndarray, groups: int, stage_values: int, pad_values: int) -> np.ndarray:
    """Row-major (out, K) weights -> (groups, K / stage_values, out / groups, stage_values + pad_values),
    zero pad: each group's stage of k in the padded row layout of its shared-memory ring, contiguous,
    so one bulk copy fetches it (kernels/fused_tc.cu with clusters, tc.cuh ClusterRing)."""
    out_c, k = rows.shape
    if out_c % groups or k % stage_values:
        raise ValueError(f"weights {rows.shape} do not split into {groups} groups of stages of {stage_values}")
    staged = rows.reshape(groups, out_c // groups, k // stage_values, stage_values).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(np.pad(staged, ((0, 0), (0, 0), (0, 0), (0, pad_values))))


def pack_weight_stages_core(rows: np.ndarray, groups: int, stage_values: int, unit_values: int) -> np.ndarray:
    """Row-major (out, K) weights -> (groups, K / stage_values, out / groups / 8, stage_values /
    unit_values, 8, unit_values): each group's stage of k as wgmma's core matrices (8 rows x 16 bytes
    of k, ``unit_values`` values, contiguous), k-fastest, no padding: the B operand that
    kernels/fused_tc.cu's CONV2_WGMMA reads from its ring by a shared-memory descriptor (LBO, the
    next core matrix along k: 128 bytes; SBO, the next 8 rows: 8 x the stage's bytes per row, 768)."""
    if rows.shape[0] % (8 * groups) or stage_values % unit_values:
        raise ValueError(f"weights {rows.shape} do not split into {groups} groups of 8-row core matrices and stages of "
                         f"{stage_values} values in units of {unit_values}")  # fmt: skip
    staged = pack_weight_stages(rows, groups, stage_values, pad_values=0)  # (groups, stages, rows, k)
    g, n_stages, rows_g, _ = staged.shape
    cores = staged.reshape(g, n_stages, rows_g // 8, 8, stage_values // unit_values, unit_values)
    return np.ascontiguousarray(cores.transpose(0, 1, 2, 4, 3, 5))


def pack_weights_rows(w: np.ndarray, k_align: int = TC_K_ALIGN) -> np.ndarray:
    """(out, in/g, k, k) -> row-major (out, Kpad) float32, K contiguous and zero-padded to
    ``k_align``: the A operand of the tensor-core implicit GEMMs (kernels/lbl_tc.cu)."""
    out_c = w.shape[0]
    k = int(np.prod(w.shape[1:]))
    kpad = -(-k // k_align) * k_align
    packed = np.zeros((out_c, kpad), np.float32)
    packed[:, :k] = np.asarray(w, np.float32).reshape(out_c, k)
    return packed


def _pad_kx(w: np.ndarray, kx: int, what: str) -> np.ndarray:
    """(out, in, ky, kx') -> row-major (out, in*ky*kx) float32, kx' zero-padded to ``kx``."""
    out_c, cin, kh, kw = w.shape
    if kw > kx:
        raise ValueError(f"{what}: kx = {kw} > {kx}")
    packed = np.zeros((out_c, cin, kh, kx), np.float32)
    packed[..., :kw] = np.asarray(w, np.float32)
    return packed.reshape(out_c, -1)


def pack_weights_kx16(w: np.ndarray) -> np.ndarray:
    """(out, in, ky, kx) -> row-major (out, in*ky*16) float32, kx zero-padded to 16: the A operand of
    conv1 from the input patch (kernels/conv1_patch.cuh), k = (c*ky_count + ky)*16 + kx."""
    return _pad_kx(w, CONV1_PATCH_KX, "conv1 patch weights")


def pack_weights_kx12(w: np.ndarray) -> np.ndarray:
    """(out, in, ky, kx) -> row-major (out, 8 k_steps) float32: kx zero-padded to 12, k = (c*ky_count +
    ky)*12 + kx, then zeros to whole weight stages of 3 k8 steps (408 values for AlexNet). The A operand of the TF32 conv1 from
    the input patch with CONV1_KX12 (kernels/conv1_patch.cuh KSTEPS: 99 quads of 4 kx in 51 k steps)."""
    rows = _pad_kx(w, 12, "conv1 patch weights (CONV1_KX12)")
    values = -(-rows.shape[1] // 24) * 24  # whole weight stages: 3 k8 steps, 24 values (c1p::BK, 48 slots)
    return np.pad(rows, ((0, 0), (0, values - rows.shape[1])))


def pack_conv1_patch_weights(w: np.ndarray, defines: dict[str, int]) -> np.ndarray:
    """conv1's weights for the input-patch kernels of a build with these -D values: kx padded to 12
    with CONV1_KX12 (TF32), else to 16."""
    return pack_weights_kx12(w) if defines.get("CONV1_KX12", 0) else pack_weights_kx16(w)


def pack_weights_s2d(w: np.ndarray, stride: int = 4) -> np.ndarray:
    """(out, in, k, k) -> row-major (out, taps*taps*in*stride*stride) float32: conv1 as a taps x taps
    convolution over the input's stride x stride space-to-depth (kernels/fused_tc.cu CONV1_S2D), k =
    (dy*taps + dx)*in*stride**2 + (c*stride + a)*stride + b for w(c, stride*dy + a, stride*dx + b),
    zero where that passes k - 1."""
    out_c, cin, kh, kw = w.shape
    if kh != kw:
        raise ValueError(f"space-to-depth weights: a square kernel, not {kh}x{kw}")
    taps = -(-kh // stride)
    padded = np.zeros((out_c, cin, taps * stride, taps * stride), np.float32)
    padded[:, :, :kh, :kw] = np.asarray(w, np.float32)
    split = padded.reshape(out_c, cin, taps, stride, taps, stride)  # (m, c, dy, a, dx, b)
    return np.ascontiguousarray(split.transpose(0, 2, 4, 1, 3, 5)).reshape(out_c, -1)


def conv1_patch_applies(layer: Layer, in_channels: int) -> bool:
    """Whether the tensor-core lbl computes ``layer`` from the input patch (conv1_patch.cuh's shape)."""
    shape = (in_channels, layer.out_channels, layer.kernel, layer.stride, layer.pad, layer.groups)
    return layer.type == "conv" and shape == CONV1_PATCH_SHAPE


def conv1_patch_launch(batch: int, out_h: int, out_w: int, sm_count: int) -> tuple[str, tuple[int, int, int]]:
    """(entry, grid) of conv1 from the input patch: 2-row blocks of all 96 channels, unless they
    would leave more than half the SMs without a block; then one-row blocks of 48 channels (110 per
    55 x 55 image). Measured (docs/perf-notes.md step 25): at batch 1 r1 beats r2, from batch 3 (84
    r2 blocks on 132 SMs) r2 wins."""
    def grid(entry: str) -> tuple[int, int, int]:
        rows, cols, msplit = CONV1_PATCH_ENTRIES[entry]
        return math.ceil(out_w / cols), math.ceil(out_h / rows), batch * msplit

    entry = "lbl_tc_conv1_r2"
    if 2 * math.prod(grid(entry)) < sm_count:
        entry = "lbl_tc_conv1_r1"
    return entry, grid(entry)


def conv_cl_applies(layer: Layer, in_channels: int) -> bool:
    """Whether the tensor-core lbl computes ``layer`` from a channels-last patch (lbl_tc.cu ConvCL:
    48 input channels per group, 5x5, stride 1, pad 2, a multiple of 128 output channels per group)."""
    if layer.type != "conv" or layer.groups < 1 or in_channels % layer.groups or layer.out_channels % layer.groups:
        return False
    per_group = (in_channels // layer.groups, layer.kernel, layer.stride, layer.pad)
    return per_group == CONV_CL_SHAPE and (layer.out_channels // layer.groups) % CONV_CL_ENTRIES["lbl_tc_conv2cl_r4"][2] == 0


def conv_cl_launch(batch: int, groups: int, out_channels: int, out_h: int, out_w: int,
                   sm_count: int) -> tuple[str, tuple[int, int, int]]:  # fmt: skip
    """(entry, grid) of the channels-last conv: 4-row blocks of 128 channels where they give every
    SM a block, else one-row blocks of 32 channels (216 per 27 x 27 x 256 image; perf-notes step 25)."""
    def grid(entry: str) -> tuple[int, int, int]:
        rows, cols, bm = CONV_CL_ENTRIES[entry]
        return math.ceil(out_w / cols), math.ceil(out_h / rows), batch * out_channels // bm

    entry = "lbl_tc_conv2cl_r4"
    if math.prod(grid(entry)) < sm_count:
        entry = "lbl_tc_conv2cl_r1"
    return entry, grid(entry)


def images_per_group(sm_count: int, blocks_per_image: int) -> int:
    """Images whose fused blocks the kernel starts tile by tile (fused.cu, block order): about one
    wave, so the larger tiles start first while an image's tiles still run together (L2 reuse of
    its input). A simulated list schedule of 2x7 at batch 128 on 132 SMs: 9.4 % over the ideal
    makespan image by image, 3.1 % with this (tests/test_kernels_gpu.py reproduces both). For the
    clustered fused_tc kernels the unit is an image slot (2 images; 1 where the cluster's blocks split
    one image by conv2 group, GROUP_SPLIT), and ``blocks_per_image`` the blocks of one slot."""
    return max(1, int(sm_count) // max(1, int(blocks_per_image)))


def lbl_conv_launch(pixels: int, m_blocks: int, groups: int, kpad: int, sm_count: int,
                    small_tiles: bool) -> tuple[int, int]:  # fmt: skip
    """(pixels per block, K slices) of one lbl conv launch.

    The full tile (128 pixels, all of K) where it gives every SM a block; else, for the tensor-core
    kernels (``small_tiles``), 32-pixel tiles and as many K slices as fill LBL_SMALL_BLOCKS_PER_SM
    blocks per SM while each slice keeps LBL_MIN_STAGES_PER_SPLIT stages (more slices measured slower:
    docs/perf-notes.md step 23): batch 1 would otherwise run conv1 on 24 and
    conv2 on 12 blocks of the 132 SMs, each a serial walk of all of K."""
    blocks = -(-pixels // LBL_BN) * m_blocks * groups
    if blocks >= sm_count or not small_tiles:
        return LBL_BN, 1
    blocks = -(-pixels // LBL_BN_SMALL) * m_blocks * groups
    stages = kpad // TC_K_ALIGN
    ksplit = max(1, min(LBL_SMALL_BLOCKS_PER_SM * sm_count // blocks, stages // LBL_MIN_STAGES_PER_SPLIT))
    return LBL_BN_SMALL, ksplit


def lrn_chunks(pixels: int, channels: int, sm_count: int) -> int:
    """Channel runs per pixel of the lbl LRN (common.cuh lrn_across_channels): one where the batch's
    pixels give four blocks per SM, else enough runs for that, at least 4 channels each."""
    target = 4 * sm_count * LBL_THREADS
    if pixels >= target:
        return 1
    return max(1, min(-(-target // pixels), channels // LRN_MIN_CHANNELS_PER_CHUNK))


def interleave_channel_groups(packed: np.ndarray, rm: int) -> np.ndarray:
    """(K, M) k-major -> same shape, each k row reordered [M/rm][rm/4][4] -> [rm/4][M/rm][4].

    The fused kernel gives each thread rm consecutive output channels (a channel group) and reads
    them as rm/4 float4s; interleaving the groups by float4 puts the 8 groups of a quarter warp in
    128 contiguous bytes, one shared-memory wavefront per phase.
    """
    k, m = packed.shape
    return np.ascontiguousarray(packed.reshape(k, m // rm, rm // 4, 4).transpose(0, 2, 1, 3).reshape(k, m))


class Forward(StoredMaps):
    """One variant's forward pass for a fixed batch and input size (see module docstring)."""

    def __init__(self, variant: str, batch: int, height: int = 227, width: int = 227,
                 params: dict | None = None, cubin: str | None = None, seed: int = 0,
                 defines: tuple[tuple[str, int], ...] = ()) -> None:  # fmt: skip
        import cupy

        try:
            self.variant: Variant = lookup_variant(variant)
        except ValueError as err:
            raise KeyError(str(err)) from None
        if self.variant.generated:
            raise ValueError(f"{variant}: a generated variant runs through make_forward (kernels.chain.ChainForward)")
        self.name = variant
        self.batch = int(batch)
        # the variant's group (hand-written kernels: alexnet conv1..pool2; the anchors: any group)
        layers, s_in = group_chain(self.variant.network, self.variant.group, int(height), int(width))
        self.layers = layers
        self.shapes = [s_in]
        for layer in layers:
            self.shapes.append(output_shape(layer, self.shapes[-1]))
        s_in, s_out = self.shapes[0], self.shapes[-1]
        self.input_shape = (self.batch, s_in.channels, s_in.height, s_in.width)
        self.output_shape = (self.batch, s_out.channels, s_out.height, s_out.width)
        from pipeline.core.reference import count_macs

        self.useful_macs_per_image = int(sum(count_macs(self.layers, s_in).values()))
        if params is None:
            params = random_params(self.layers, s_in, seed)
        # the weights as the kernels hold them (rounded to 16 bits for fp16/bf16, to TF32 for tf32;
        # biases stay FP32)
        self.precision = self.variant.precision
        self.params = {k: (round_to_precision(_to_host(w), self.precision), _to_host(b)) for k, (w, b) in params.items()}
        self.dtype = STORAGE_DTYPES[self.precision]  # maps and weights on the device (bf16: raw bits)
        self.output = cupy.empty(self.output_shape, self.dtype)
        if defines and cubin:
            raise ValueError("extra defines need a run-time (NVRTC) build: pass cubin=None")
        self._cubin = cubin
        self._defines = tuple(defines)
        self.module = None  # the fused variant's module (pipeline/stages/phases.py reads its counters)
        strategy = self.variant.strategy
        if strategy == "lbl":
            self._setup_lbl()
        elif strategy in ("reuse", "recompute"):
            self._setup_fused()
        elif strategy == "vendor":
            self._setup_vendor()
        else:
            raise ValueError(f"variant {variant!r}: unknown strategy {strategy!r}")

    # ---------------------------------------------------------------- helpers
    def _kernel(self, entry: str):
        from pipeline.core.gpu import load_kernel

        if self._cubin:
            return load_kernel(str(self._cubin), entry)
        return self._module().get_function(entry)

    def _module(self):
        """The variant's module: the build stage's cubin, else an NVRTC build (with any extra defines)."""
        from pipeline.core.gpu import compile_module, load_module

        if self._cubin:
            return load_module(str(self._cubin))
        return compile_module(self.variant.source, self.variant.defines + self._defines)

    def _exported_ints(self, name: str, n: int = 1) -> list[int]:
        """An ``extern "C" __device__ int[n]`` the module exports (an entry's shared memory, its tile)."""
        import cupy

        return [int(v) for v in cupy.ndarray((n,), cupy.int32, self._module().get_global(name)).get()]

    def _patch_entry(self, entry: str, tile: tuple[int, int, int], grid: tuple[int, int, int]) -> int:
        """Check a patch conv entry's (rows, columns, channels) per block against the host's grid
        table and the grid against CUDA's limits; set and return its dynamic shared memory."""
        built = tuple(self._exported_ints(f"{entry}_tile", 3))
        if built != tile:
            raise RuntimeError(f"{entry}: the kernel's block tile is {built}, kernels/api.py's table says {tile}")
        if max(grid[1:]) > 65535:
            raise ValueError(f"{entry}: grid {grid} exceeds CUDA's 65535 blocks in y or z (batch {self.batch} too large)")
        smem = self._exported_ints(f"{entry}_smem_bytes")[0]
        self._kernel(entry).max_dynamic_shared_size_bytes = smem
        return smem

    def _device_biases(self):
        import cupy

        self._b1 = cupy.asarray(self.params["conv1"][1], cupy.float32)
        self._b2 = cupy.asarray(self.params["conv2"][1], cupy.float32)

    def _gather_weights(self, layer: str):
        """A conv's weights as the general lbl conv reads them, uploaded where that kernel runs
        (the patch convs and the fused kernels pack their own): FP32 k-major (K padded to 16), or
        the tensor cores' row-major (out, Kpad) in the storage precision."""
        import cupy

        w = self.params[layer][0]
        if self.precision == "fp32":
            return cupy.asarray(pack_weights(w))
        return self.encode(pack_weights_rows(w))

    # ---------------------------------------------------------------- lbl
    def _setup_lbl(self) -> None:
        import cupy

        self._device_biases()

        def entry_named(suffix: str) -> str | None:  # by name: lbl-tf32 has no gather convs, only the patch kernels
            return next((e for e in self.variant.entries if e.endswith(suffix)), None)

        conv_m96, conv_m128 = entry_named("_conv_m96"), entry_named("_conv_m128")
        lrn, maxpool = entry_named("_lrn"), entry_named("_maxpool")
        # tensor cores: the 32-pixel tiles (split-K capable), conv1 from the input patch
        conv_small = dict(zip((96, 128), (e for e in self.variant.entries if e.endswith("_n32"))))
        has_conv1_patch = any(e in CONV1_PATCH_ENTRIES for e in self.variant.entries)
        has_conv_cl = any(e in CONV_CL_ENTRIES for e in self.variant.entries)
        kpad_axis = 0 if self.precision == "fp32" else 1  # k-major (FP32) or row-major (tensor cores)
        sm_count = cupy.cuda.Device().attributes["MultiProcessorCount"]
        self.launches: list[dict] = []  # per conv and LRN: the small-batch choices (tile, K slices, runs)
        self._steps: list[tuple[Any, tuple, Any, tuple, int]] = []  # kernel, grid, input, args, dynamic smem
        self.step_layers: list[str] = []  # the layer each kernel computes (a conv's ReLU rides along)
        names = []
        n = self.batch
        buf_in = None  # None = the call's input
        for i, layer in enumerate(self.layers):
            s_in, s_out = self.shapes[i], self.shapes[i + 1]
            if layer.type == "relu":
                continue  # fused into the conv epilogue
            last = i == len(self.layers) - 1
            out = self.output if last else cupy.empty((n, s_out.channels, s_out.height, s_out.width), self.dtype)
            smem = 0
            if layer.type == "conv":
                if i + 1 >= len(self.layers) or self.layers[i + 1].type != "relu":
                    raise ValueError(f"lbl: conv {layer.name!r} must be followed by relu (fused epilogue)")
                bp = self._b1 if layer.name == "conv1" else self._b2  # FP32 biases (_device_biases)
            if layer.type == "conv" and has_conv1_patch and conv1_patch_applies(layer, s_in.channels):
                entry, grid = conv1_patch_launch(n, s_out.height, s_out.width, sm_count)
                wp = self.encode(pack_conv1_patch_weights(self.params[layer.name][0], self.variant.define))
                args = (wp, bp, out, np.int32(s_in.height), np.int32(s_in.width), np.int32(s_out.height),
                        np.int32(s_out.width))  # fmt: skip
                rows, cols, msplit = CONV1_PATCH_ENTRIES[entry]
                smem = self._patch_entry(entry, (rows, cols, CONV1_PATCH_SHAPE[1] // msplit), grid)
                self.launches.append({"layer": layer.name, "conv1_patch_entry": entry})
            elif layer.type == "conv" and has_conv_cl and conv_cl_applies(layer, s_in.channels):
                entry, grid = conv_cl_launch(n, layer.groups, layer.out_channels, s_out.height, s_out.width, sm_count)
                w = self.params[layer.name][0]  # k in (ky, kx, c) order: a weight stage is one (ky, kx)
                wp = self.encode(pack_weights_rows(np.ascontiguousarray(w.transpose(0, 2, 3, 1)), k_align=16))
                args = (wp, bp, out, np.int32(s_in.channels),
                        np.int32(s_in.height), np.int32(s_in.width), np.int32(layer.out_channels),
                        np.int32(s_out.height), np.int32(s_out.width), np.int32(layer.groups))  # fmt: skip
                smem = self._patch_entry(entry, CONV_CL_ENTRIES[entry], grid)
                self.launches.append({"layer": layer.name, "conv_cl_entry": entry})
            elif layer.type == "conv":
                if conv_m96 is None:
                    raise ValueError(f"{self.name}: conv {layer.name} {layer.kernel}x{layer.kernel}/{layer.stride} "
                                     f"fits neither patch kernel, and {self.precision} has no general conv kernel")  # fmt: skip
                mg = layer.out_channels // layer.groups
                bm = 96 if mg % 96 == 0 else 128
                kg = (s_in.channels // layer.groups) * layer.kernel**2
                if kg > 1536:
                    raise ValueError(f"lbl conv {layer.name}: K={kg} exceeds the kernel's table (1536)")
                if self.precision != "fp32" and (s_in.channels // layer.groups) * s_in.height * s_in.width >= 1 << 24:
                    raise ValueError(f"lbl conv {layer.name}: a group's input map exceeds the 24-bit k table offsets")
                wp = self._gather_weights(layer.name)
                kpad, pixels = wp.shape[kpad_axis], n * s_out.height * s_out.width
                bn, ksplit = lbl_conv_launch(pixels, math.ceil(mg / bm), layer.groups, kpad, sm_count,
                                             small_tiles=bool(conv_small))  # fmt: skip
                entry = conv_small[bm] if bn == LBL_BN_SMALL else conv_m96 if bm == 96 else conv_m128
                grid = (math.ceil(pixels / bn), math.ceil(mg / bm), layer.groups * ksplit)
                args = (wp, bp, out, np.int32(n), np.int32(s_in.channels), np.int32(s_in.height),
                        np.int32(s_in.width), np.int32(layer.out_channels), np.int32(s_out.height),
                        np.int32(s_out.width), np.int32(layer.kernel), np.int32(layer.stride),
                        np.int32(layer.pad), np.int32(layer.groups), np.int32(kpad))  # fmt: skip
                if self.precision != "fp32":  # split-K's FP32 partials and per-tile arrival counters
                    partial = cupy.empty(ksplit * n * s_out.values if ksplit > 1 else 1, cupy.float32)
                    arrivals = cupy.zeros(grid[0] * grid[1] * layer.groups, cupy.uint32)
                    args += (partial, arrivals, np.int32(ksplit))
                self.launches.append({"layer": layer.name, "pixels_per_block": bn, "k_slices": ksplit})
            elif layer.type == "lrn":
                entry = lrn
                hw = s_in.height * s_in.width
                chunks = lrn_chunks(n * hw, s_in.channels, sm_count)
                grid = (math.ceil(n * hw * chunks / LBL_THREADS), 1, 1)
                args = (out, np.int32(n), np.int32(s_in.channels), np.int32(hw), np.int32(layer.local_size),
                        np.float32(layer.alpha), np.float32(layer.beta), np.float32(layer.k),
                        np.int32(chunks))  # fmt: skip
                self.launches.append({"layer": layer.name, "channel_chunks": chunks})
            elif layer.type == "maxpool":
                if layer.pad:
                    raise ValueError("lbl_maxpool supports pad 0 only")
                entry = maxpool
                grid = (math.ceil(n * s_out.values / LBL_THREADS), 1, 1)
                args = (out, np.int32(n * s_in.channels), np.int32(s_in.height), np.int32(s_in.width),
                        np.int32(s_out.height), np.int32(s_out.width), np.int32(layer.kernel),
                        np.int32(layer.stride))  # fmt: skip
            else:
                raise ValueError(f"lbl: unsupported layer type {layer.type!r}")
            self._steps.append((self._kernel(entry), grid, buf_in, args, smem))
            names.append(entry)
            self.step_layers.append(layer.name)
            buf_in = out
        self.kernels = names

        def run(x):
            for kern, grid, src, args, smem in self._steps:
                kern(grid, (LBL_THREADS,), (x if src is None else src, *args), shared_mem=smem)
            return self.output

        self._run = run

    def graph(self, x):
        """A CUDA graph of ``self(x)`` (kernels/graphs.py); the PyTorch anchors through
        ``torch.cuda.graph``, all graphs of this Forward in one memory pool."""
        if self.variant.strategy != "vendor":
            return super().graph(x)
        from kernels.graphs import torch_graph

        self(x)  # checks the input; warm (cuDNN's benchmark picks its algorithms on the first call)
        xt = self._as_torch(x)
        replay, self._graph_pool = torch_graph(lambda: self._torch_pass(xt), self._graph_pool)
        return replay

    def run_step(self, i: int, x) -> None:
        """lbl only: launch kernel ``i`` alone (``x`` is the forward's input; later kernels read
        the intermediate maps the earlier ones left), for per-kernel timing."""
        kern, grid, src, args, smem = self._steps[i]
        kern(grid, (LBL_THREADS,), (x if src is None else src, *args), shared_mem=smem)

    # ---------------------------------------------------------------- fused
    def _setup_fused(self) -> None:
        import cupy

        v = self.variant
        tile, strategy = v.tile, v.strategy
        wcluster = v.define.get("WCLUSTER", 1)  # fused_tc.cu: blocks per cluster, on the same tiles of as many images
        self._check_fused_shapes()
        check_fits(tile, strategy, precision=self.precision)
        cols = v.define.get("CONV1_MAX_COLS")  # fused_tc.cu: a build that holds fewer conv1 columns than its tile's
        pool1_width = self.shapes[[l.name for l in self.layers].index("pool1") + 1].width
        if cols is not None and (need := fused_tc_conv1_cols_needed(tile, pool1_width)) > cols:
            raise ValueError(f"{v.name} holds {cols} conv1 columns per strip (its tile spans the pool2 map of a "
                             f"227-wide input); the strips of this {self.shapes[0].width}-wide input need {need}: "
                             "use a narrower tile, such as 4x7")  # fmt: skip
        self._device_biases()
        (w1, _), (w2, _) = self.params["conv1"], self.params["conv2"]
        if self.precision == "fp32":
            self._w1p = cupy.asarray(interleave_channel_groups(pack_weights(w1), FUSED_RM[0]))
            self._w2p = cupy.asarray(interleave_channel_groups(pack_weights(w2), FUSED_RM[1]))
            smem = fused_smem_bytes(tile, strategy)
        else:  # kernels/fused_tc.cu: conv1 from the input patch (kx padded to 16); conv2's k in (ky, kx, ci)
            # order, to read channels-last pool1 directly
            s2d = v.define.get("CONV1_S2D", 0)  # conv1 over the input's 4x4 space-to-depth
            self._w1p = self.encode(pack_weights_s2d(w1) if s2d else pack_conv1_patch_weights(w1, v.define))
            w2rows = pack_weights_rows(np.ascontiguousarray(w2.transpose(0, 2, 3, 1)), k_align=16)
            vs = tc_value_slots(self.precision)
            stage_slots = v.define.get("CONV2_STAGE_SLOTS", FUSED_TC_CONV2_STAGE_SLOTS_DEFAULT)  # fused_tc.cu BK2
            if wcluster > 1 and v.define.get("CONV2_WGMMA", 0):  # per group, stage by stage, as core matrices
                w2rows = pack_weight_stages_core(w2rows, groups=2, stage_values=stage_slots // vs, unit_values=8 // vs)
            elif wcluster > 1:  # per group, stage by stage, in the ring's layout: BK2 slots of k, 8 of padding
                w2rows = pack_weight_stages(w2rows, groups=2, stage_values=stage_slots // vs, pad_values=8 // vs)
            self._w2p = self.encode(w2rows)
            # the layout of this build's -D values (pipeline.bench --set may change them: a knob that
            # adds a barrier adds its bytes), not the registry default's
            smem = fused_tc_smem_bytes_of(v.define)
        kern = self._kernel(v.entries[0])
        self.module = self._module()
        kern.max_dynamic_shared_size_bytes = smem
        n, c_out, hp2, wp2 = self.output_shape
        tile_h, tile_w = tile_sides(tile)
        tiles_x, tiles_y = math.ceil(wp2 / tile_w), math.ceil(hp2 / tile_h)
        # with clusters, x counts the cluster's blocks and z image slots of wcluster images (GROUP_SPLIT:
        # of one image, whose conv2 groups the cluster's two blocks split)
        slot_images = 1 if v.define.get("GROUP_SPLIT", 0) else wcluster
        grid = (tiles_x * wcluster, 1 if strategy == "reuse" else tiles_y, math.ceil(n / slot_images))
        sm_count = cupy.cuda.Device().attributes["MultiProcessorCount"]
        self.images_per_group = images_per_group(sm_count, grid[0] * grid[1])
        norm1 = _layer(self.layers, "norm1")
        s_in = self.shapes[0]
        if self.precision == "fp32":
            self._args = (self._w1p, self._b1, self._w2p, self._b2, self.output, np.int32(n), np.int32(s_in.height),
                    np.int32(s_in.width), np.int32(s_in.channels), np.int32(self.shapes[1].channels),
                    np.int32(c_out), np.float32(norm1.alpha), np.float32(norm1.beta), np.float32(norm1.k),
                    np.int32(self.images_per_group))  # fmt: skip
        else:
            self._args = (self._w1p, self._b1, self._w2p, self._b2, self.output, np.int32(n), np.int32(s_in.height),
                          np.int32(s_in.width), np.float32(norm1.alpha), np.float32(norm1.beta),
                          np.float32(norm1.k), np.int32(self.images_per_group))  # fmt: skip
        self.kernels = [v.entries[0]]
        self.grid, self.smem_bytes = grid, smem

        def run(x):
            kern(grid, (FUSED_THREADS,), (x, *self._args), shared_mem=smem)
            return self.output

        self._run = run

    def _check_fused_shapes(self) -> None:
        """The fused kernel's tiling is compiled for AlexNet's channel counts and layer shapes."""
        want = {"conv1": (96, 11, 4, 0, 1), "conv2": (256, 5, 1, 2, 2)}
        for name, (oc, k, s, p, g) in want.items():
            l = _layer(self.layers, name)
            if (l.out_channels, l.kernel, l.stride, l.pad, l.groups) != (oc, k, s, p, g):
                raise ValueError(f"fused kernels are compiled for {name} = {want[name]}, network has {l}")
        if self.shapes[0].channels != 3:
            raise ValueError("fused kernels are compiled for 3 input channels")
        n1, n2 = _layer(self.layers, "norm1"), _layer(self.layers, "norm2")
        if n1.local_size != 5 or (n1.alpha, n1.beta, n1.k) != (n2.alpha, n2.beta, n2.k):
            raise ValueError("fused kernels are compiled for LRN size 5 with equal constants in both LRNs")
        for name in ("pool1", "pool2"):
            l = _layer(self.layers, name)
            if (l.kernel, l.stride, l.pad) != (3, 2, 0):
                raise ValueError(f"fused kernels are compiled for 3x3/2 pools, {name} is {l}")

    # ---------------------------------------------------------------- vendor
    def _setup_vendor(self) -> None:
        """PyTorch at the variant's precision: eager NCHW (``vendor``), channels-last with
        cudnn.benchmark (``vendor-cl``: cuDNN may pick FFT or Winograd), or torch.compile
        max-autotune-no-cudagraphs of the whole block (``vendor-compile``; compiled here, on a
        first call, so compile time stays out of the timed passes: ``setup_s`` records it). TF32 is
        off for fp32. The call's NCHW input is converted to channels-last inside the timed pass."""
        import time

        ok, why = vendor_available()
        if not ok:
            raise RuntimeError(f"variant {self.variant.name!r} is unavailable: {why}")
        import torch
        import torch.nn.functional as F

        impl = self.variant.impl
        tdtype = torch_precision(self.precision)
        torch.backends.cudnn.benchmark = impl in ("cl", "compile")
        fmt = torch.channels_last if impl in ("cl", "compile") else torch.contiguous_format
        dev = torch.device("cuda", torch.cuda.current_device())
        tp = {k: (torch.as_tensor(w, device=dev).to(tdtype).contiguous(memory_format=fmt),
                  torch.as_tensor(b, device=dev).to(tdtype)) for k, (w, b) in self.params.items()}  # fmt: skip
        as_torch = (lambda a: torch.from_dlpack(a).view(torch.bfloat16)) if self.precision == "bf16" else torch.from_dlpack
        out_t = as_torch(self.output)
        layers = self.layers

        def block(y):
            for l in layers:
                if l.type == "conv":
                    w, b = tp[l.name]
                    y = F.conv2d(y, w, b, stride=l.stride, padding=l.pad, groups=l.groups)
                elif l.type == "relu":
                    y = F.relu(y)
                elif l.type == "lrn":
                    y = F.local_response_norm(y, l.local_size, alpha=l.alpha, beta=l.beta, k=l.k)
                elif l.type == "maxpool":
                    y = F.max_pool2d(y, l.kernel, l.stride, l.pad)
            return y

        fn = torch.compile(block, mode="max-autotune-no-cudagraphs") if impl == "compile" else block
        self.kernels = [f"torch.{impl or 'eager'}.{l.type}" for l in layers]

        def torch_pass(xt) -> None:  # on torch's current stream
            out_t.copy_(fn(xt.contiguous(memory_format=fmt)))

        def run(x):
            from kernels.graphs import torch_stream_of_cupy

            with torch.no_grad(), torch.cuda.stream(torch_stream_of_cupy()):
                torch_pass(as_torch(x))
            return self.output

        self._torch_pass, self._as_torch, self._graph_pool = torch_pass, as_torch, None

        t0 = time.perf_counter()
        if impl == "compile":  # compile (and autotune) now, on this shape
            run(self.random_input(0))
            torch.cuda.synchronize()
        self.setup_s = time.perf_counter() - t0
        self._run = run


def make_forward(variant: str, batch: int, height: int = 227, width: int = 227, params: dict | None = None,
                 cubin: str | None = None, seed: int = 0,
                 defines: tuple[tuple[str, int], ...] = ()) -> StoredMaps:  # fmt: skip
    """Build a :class:`Forward` for ``variant`` (see the module docstring for the contract), or a
    :class:`kernels.chain.ChainForward` for a generated one, at ``height`` x ``width`` (the group's
    input channels from its network file); ``fwd.variant`` is the record either way.

    ``defines`` adds ``-D`` flags to an NVRTC build (``cubin`` must be None), e.g.
    ``(("PHASE_TIMING", 1),)`` for the fused kernel's phase counters (pipeline/stages/phases.py);
    generated kernels take none.
    """
    v = lookup_variant(variant)
    if not v.generated:
        return Forward(variant, batch, height, width, params, cubin, seed, defines)
    if defines:
        raise ValueError(f"{variant}: generated kernels take no extra defines")
    from kernels.chain import ChainForward

    layers, in_shape = group_chain(v.network, v.group, height, width)
    fwd = ChainForward(layers, in_shape, batch, str(v.strategy), v.tile, v.precision, params=params, seed=seed,
                       name=v.name, cubin=cubin)  # fmt: skip
    fwd.variant = v
    return fwd


def forward(variant: str, x, params: dict | None = None, cubin: str | None = None):
    """Convenience: one forward pass of ``variant`` on the device array ``x`` (N, C, H, W)."""
    n, _, h, w = x.shape
    return make_forward(variant, n, h, w, params, cubin)(x)
