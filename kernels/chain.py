"""Forward passes of any conv chain through the generated kernels (kernels/generate.py).

``ChainForward(layers, in_shape, batch, strategy, tile, precision)`` has the contract of
``kernels.api.Forward``: a callable that launches on the current CuPy stream and writes a
preallocated output (N, C, H, W) in the precision's storage. ``strategy`` is ``reuse`` or
``recompute`` (one fused kernel) or ``lbl``: one generated kernel per spatial layer with its
ReLU/LRN followers, maps between them in global memory, on the same GEMM core as the fused kernel.
All of a pass's kernels are one module (:attr:`ChainForward.source`); ``cubin`` is that module
built by nvcc (the build stage), else NVRTC compiles it here. :func:`chain_kernels` and
:func:`chain_source` give the same kernels and module text without CuPy (the build stage and the
plan use them).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from pathlib import Path

import numpy as np

from kernels.maps import STORAGE_DTYPES, StoredMaps, _to_host, random_params, round_to_precision
from kernels.generate import ENTRY, GeneratedKernel, generate, module_source, n_tiles
from pipeline.core.arch import MAX_SMEM_PER_BLOCK_BYTES
from pipeline.core.networks import Layer, Shape, output_shape
from pipeline.core.tiles import Tile
from pipeline.model.linebuffer import ChainError, ChainLayout, chain_layout

SMEM_LIMIT_BYTES = MAX_SMEM_PER_BLOCK_BYTES["sm_90"]
# lbl: output tiles tried per layer, largest first; the first whose rings fit LBL_SMEM_BYTES is used
# (small enough for two blocks per SM).
LBL_TILES: tuple[Tile, ...] = ((8, 32), (4, 32), (4, 16), (2, 16), (2, 8), (1, 8), (1, 4), (1, 2), 1)
LBL_SMEM_BYTES = 100 * 1024


def lbl_segments(layers: Sequence[Layer]) -> list[tuple[Layer, ...]]:
    """The kernels of a layer-by-layer pass: each conv or max pool with the ReLU/LRN after it."""
    segments: list[list[Layer]] = []
    for layer in layers:
        if layer.is_spatial or not segments:
            segments.append([layer])
        else:
            segments[-1].append(layer)
    return [tuple(s) for s in segments]


def lbl_tile(layers: Sequence[Layer], in_shape: Shape, precision: str) -> Tile:
    """The largest of LBL_TILES whose single-layer kernel fits LBL_SMEM_BYTES."""
    for tile in LBL_TILES:
        if chain_layout(layers, in_shape, tile, "recompute", precision).smem_bytes <= LBL_SMEM_BYTES:
            return tile
    raise ChainError(f"{layers[0].name}: no lbl tile fits {LBL_SMEM_BYTES} bytes of shared memory")


def chain_kernels(layers: Sequence[Layer], in_shape: Shape, strategy: str, tile: Tile | None, precision: str,
                  threads: int | None = None, m_tiles: int | None = None) -> list[GeneratedKernel]:  # fmt: skip
    """The generated kernels of one pass, in launch order (CuPy-free): one fused kernel of the whole
    chain for ``reuse``/``recompute`` at ``tile``, or one per :func:`lbl_segments` segment at its
    :func:`lbl_tile` for ``lbl`` (entries ``chain_fused_<i>``; ``tile`` unused). ChainError in one
    line where a layout does not fit the shared memory of a block. ``threads`` and ``m_tiles``
    override the generator's choices (A/B experiments)."""
    layers = tuple(layers)
    if strategy != "lbl":
        return [generate(layers, in_shape, tile, strategy, precision, SMEM_LIMIT_BYTES, label="fused", threads=threads,
                         m_tiles=m_tiles)]  # fmt: skip
    kernels, shape = [], in_shape
    for i, seg in enumerate(lbl_segments(layers)):
        kernels.append(generate(seg, shape, lbl_tile(seg, shape, precision), "recompute", precision, SMEM_LIMIT_BYTES,
                                label="lbl", entry=f"{ENTRY}_{i}", threads=threads, m_tiles=m_tiles))  # fmt: skip
        shape = kernels[-1].layout.shapes[-1]
    return kernels


def pass_layouts(layers: Sequence[Layer], in_shape: Shape, strategy: str, tile: Tile | None, precision: str,
                 smem_limit_bytes: int = SMEM_LIMIT_BYTES) -> list[ChainLayout]:  # fmt: skip
    """The layouts of :func:`chain_kernels`' kernels without writing their source (the plan's model
    quantities, the config's fit check); ChainError in one line where one does not fit."""
    layers = tuple(layers)
    if strategy != "lbl":
        return [chain_layout(layers, in_shape, tile, strategy, precision, smem_limit_bytes)]
    out, shape = [], in_shape
    for seg in lbl_segments(layers):
        out.append(chain_layout(seg, shape, lbl_tile(seg, shape, precision), "recompute", precision, smem_limit_bytes))
        shape = out[-1].shapes[-1]
    return out


@lru_cache(maxsize=None)
def fit_problem(network: str, group_range: tuple[str, str], strategy: str, tile: Tile | None,
                precision: str) -> str | None:  # fmt: skip
    """None when the generated pass of a network's group (first, last layer) fits the shared memory of
    a block at the network's input size (:data:`SMEM_LIMIT_BYTES`, the generator's), else why not."""
    from pipeline.core.networks import load_network

    net = load_network(network)
    try:
        pass_layouts(net.group(*group_range), net.shapes()[net.index(group_range[0])], strategy, tile, precision)
    except ChainError as err:
        return str(err)
    return None


def chain_source(layers: Sequence[Layer], in_shape: Shape, strategy: str, tile: Tile | None, precision: str) -> str:
    """The CUDA module of one pass (:func:`chain_kernels`), the text the build stage compiles."""
    return module_source(chain_kernels(layers, in_shape, strategy, tile, precision))


def pack_conv_weights(w: np.ndarray, groups: int, precision: str) -> np.ndarray:
    """(out, in/g, k, k) float32 -> the layout chain.cuh's conv_rows reads (see there), float32 values."""
    cout, cing, k, _ = w.shape
    coutg = cout // groups
    wg = w.reshape(groups, coutg, cing, k, k)
    if precision == "fp32":  # [G][ky][kx][ci][co padded to 4]
        cq = -(-coutg // 4) * 4
        packed = np.zeros((groups, k, k, cing, cq), np.float32)
        packed[..., :coutg] = wg.transpose(0, 3, 4, 2, 1)
        return packed
    nt = n_tiles(coutg)  # [G][co tile][ky][k16 step][n8 j][lane (gq, tq)][k 2tq, 2tq+1, 2tq+8, 2tq+9]
    ntile = nt * 8
    ct = -(-coutg // ntile)
    kk = k * cing
    kkp = -(-kk // 16) * 16
    rows = np.zeros((groups, ct * ntile, k, kkp), np.float32)  # (co, ky, (kx, ci)) zero-padded
    rows[:, :coutg, :, :kk] = wg.transpose(0, 1, 3, 4, 2).reshape(groups, coutg, k, kk)
    if precision == "tf32":  # [G][co tile][ky][k16 step][k8 half][n8 j][lane (gq, tq)][k tq, tq+4]
        r = rows.reshape(groups, ct, nt, 8, k, kkp // 16, 2, 2, 4)  # g, ct, j, gq, ky, step, half, +4, tq
        frag = r.transpose(0, 1, 4, 5, 6, 2, 3, 8, 7)  # g, ct, ky, step, half, j, gq, tq, +4
        return np.ascontiguousarray(frag).reshape(-1)
    r = rows.reshape(groups, ct, nt, 8, k, kkp // 16, 2, 4, 2)  # g, ct, j, gq, ky, step, +8, tq, pair
    frag = r.transpose(0, 1, 4, 5, 2, 3, 7, 6, 8)  # g, ct, ky, step, j, gq, tq, +8, pair
    return np.ascontiguousarray(frag).reshape(-1)


class ChainForward(StoredMaps):
    """A generated forward pass of ``layers`` for a fixed batch and input shape (module docstring)."""

    def __init__(self, layers: Sequence[Layer], in_shape: Shape, batch: int, strategy: str, tile: Tile | None,
                 precision: str, params: dict | None = None, seed: int = 0, name: str = "chain",
                 cubin: str | None = None, threads: int | None = None, m_tiles: int | None = None) -> None:  # fmt: skip
        import cupy

        self.layers = tuple(layers)
        self.name, self.precision, self.batch = name, precision, int(batch)
        self.dtype = STORAGE_DTYPES[precision]
        shapes = [in_shape]
        for layer in self.layers:
            shapes.append(output_shape(layer, shapes[-1]))
        self.shapes = shapes
        self.input_shape = (self.batch, in_shape.channels, in_shape.height, in_shape.width)
        out = shapes[-1]
        self.output_shape = (self.batch, out.channels, out.height, out.width)
        self.output = cupy.empty(self.output_shape, self.dtype)
        if params is None:
            params = random_params(self.layers, in_shape, seed)
        self.params = {k: (round_to_precision(_to_host(w), precision), _to_host(b)) for k, (w, b) in params.items()}

        from pipeline.core.reference import count_macs

        self.useful_macs_per_image = int(sum(count_macs(self.layers, in_shape).values()))
        self.variant = None  # kernels.api.make_forward sets the Variant record
        self.kernels_generated = chain_kernels(self.layers, in_shape, strategy, tile, precision, threads, m_tiles)
        self.source = module_source(self.kernels_generated)
        if cubin:  # the module is specific to the input size: a cubin of another size would run wrong tables
            built = Path(cubin).with_suffix(".cu")  # the build stage writes the module beside the cubin
            if built.exists() and built.read_text() != self.source:
                raise ValueError(f"{name}: {cubin} was built from another module than the one for "
                                 f"{in_shape.height}x{in_shape.width} ({built} differs; rebuild it, or pass "
                                 f"cubin=None for an NVRTC build)")  # fmt: skip
        self.kernels = [g.entry for g in self.kernels_generated]
        self._launches = []
        buf_in = None  # None: the call's input
        for n_k, gen in enumerate(self.kernels_generated):
            seg = gen.layout.layers
            kern = self._kernel(gen.entry, cubin)
            kern.max_dynamic_shared_size_bytes = gen.smem_bytes
            last = n_k == len(self.kernels_generated) - 1
            seg_out = gen.layout.shapes[-1]
            out_buf = self.output if last else cupy.empty((self.batch, seg_out.channels, seg_out.height, seg_out.width),
                                                           self.dtype)  # fmt: skip
            weights = []
            for i in gen.conv_layers:
                layer = seg[i]
                w, b = self.params[layer.name]
                weights += [self._device(pack_conv_weights(w, layer.groups, precision)),
                            cupy.asarray(b, cupy.float32)]  # fmt: skip
            self._launches.append((kern, gen.grid(self.batch), gen.threads, gen.smem_bytes, buf_in, out_buf,
                                   tuple(weights)))  # fmt: skip
            buf_in = out_buf
        self.smem_bytes = max(g.smem_bytes for g in self.kernels_generated)

    def _device(self, a: np.ndarray):
        return self.encode(np.ascontiguousarray(a))

    def _kernel(self, entry: str, cubin: str | None):
        """From the build stage's cubin of :attr:`source`, else an NVRTC build of it."""
        from pipeline.core.gpu import compile_source, load_kernel

        if cubin:
            return load_kernel(str(cubin), entry)
        return compile_source(self.source).get_function(entry)

    def _run(self, x):
        for kern, grid, threads, smem, src, out, weights in self._launches:
            kern(grid, (threads,), (x if src is None else src, out, *weights), shared_mem=smem)
        return self.output
