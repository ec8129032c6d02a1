"""cuDNN's convolutions of the kernels' fusion group, each alone: a floor under layer-by-layer cuDNN.

The PyTorch anchors time the whole block: convolutions, ReLU, LRN, pools and, for the channels-last
anchor, the conversion of the NCHW input. A layer-by-layer pass built from cuDNN's convolutions
cannot be faster than those convolutions alone, so the sum of their times is a lower bound on any
such composite, whatever its other layers cost: the fastest "lbl from cuDNN" there could be.

Each convolution runs as the ``vendor-cl`` anchor runs it (``kernels/api.py``): ``F.conv2d`` with
the layer's stride, pad, groups and bias, channels-last, ``cudnn.benchmark`` on (cuDNN picks its
fastest algorithm for the shape during the warm-up), in the variant's precision with TF32 off for
fp32. Its input is already channels-last, so no layout conversion is timed, and ReLU is left out.
``pipeline/stages/time.py`` times each one as it times a forward pass. torch is imported lazily, so
this module imports on a machine without it.
"""

from __future__ import annotations

from typing import Any

from kernels.maps import torch_precision
from kernels.registry import Variant, vendor_available
from pipeline.core.reference import layer_macs
from pipeline.core.strategy import Strategy

CONVS_ALONE_IMPL = "cl"  # the anchor whose convolutions are timed alone (channels-last, cudnn.benchmark)


def times_convs_alone(variant: Variant) -> bool:
    """Whether the time stage also times ``variant``'s convolutions alone (the channels-last anchor)."""
    return variant.strategy == Strategy.VENDOR and variant.impl == CONVS_ALONE_IMPL


class ConvAlone:
    """Convolution ``index`` of a vendor Forward (``kernels.api.Forward``: its layers, shapes, batch,
    precision and weights) as a callable that ``pipeline.stages.time.time_forward`` times:
    ``input_shape``, ``random_input(seed)`` (a channels-last torch tensor on the device),
    ``useful_macs_per_image``, and ``__call__(x)``, which launches on CuPy's current stream (where
    the timing events are recorded) and returns the output."""

    def __init__(self, fwd: Any, index: int) -> None:
        import torch
        import torch.nn.functional as F

        layer, s_in = fwd.layers[index], fwd.shapes[index]
        if layer.type != "conv":
            raise ValueError(f"layer {layer.name!r} is a {layer.type}, not a conv")
        # as the vendor-cl Forward sets them; set here too, so a fp32 conv never runs as TF32 (tf32 does)
        torch.backends.cudnn.benchmark = True
        self._dtype = torch_precision(fwd.precision)
        self.name = layer.name
        self.input_shape = (fwd.batch, s_in.channels, s_in.height, s_in.width)
        self.useful_macs_per_image = layer_macs(layer, s_in)
        self._device = torch.device("cuda", torch.cuda.current_device())
        w, b = fwd.params[layer.name]
        self._w = torch.as_tensor(w, device=self._device).to(self._dtype).contiguous(memory_format=torch.channels_last)
        self._b = torch.as_tensor(b, device=self._device).to(self._dtype)
        self._layer = layer
        self._conv2d = F.conv2d
        self._graph_pool = None  # the memory pool its graphs share (kernels/graphs.py)

    def random_input(self, seed: int = 0):
        """N(0, 1) input of ``input_shape`` in the variant's precision, already channels-last."""
        import torch

        gen = torch.Generator(device=self._device).manual_seed(seed)
        x = torch.randn(self.input_shape, generator=gen, device=self._device, dtype=torch.float32)
        return x.to(self._dtype).contiguous(memory_format=torch.channels_last)

    def _conv(self, x):
        l = self._layer
        return self._conv2d(x, self._w, self._b, stride=l.stride, padding=l.pad, groups=l.groups)

    def __call__(self, x):
        import torch

        from kernels.graphs import torch_stream_of_cupy

        with torch.no_grad(), torch.cuda.stream(torch_stream_of_cupy()):
            return self._conv(x)

    def graph(self, x):
        """A CUDA graph of ``self(x)`` (kernels/graphs.py), as the anchor's forward pass is timed."""
        from kernels.graphs import torch_graph

        self(x)  # warm: cuDNN's benchmark picks its algorithm for the shape
        replay, self._graph_pool = torch_graph(lambda: self._conv(x), self._graph_pool)
        return replay


def convs_alone(fwd: Any) -> list[ConvAlone]:
    """A :class:`ConvAlone` per convolution of ``fwd``'s group, in network order; a clear error where
    torch cannot run (the vendor variants' own condition)."""
    ok, why = vendor_available()
    if not ok:
        raise RuntimeError(f"cuDNN convolutions cannot be timed alone: {why}")
    return [ConvAlone(fwd, i) for i, layer in enumerate(fwd.layers) if layer.type == "conv"]
