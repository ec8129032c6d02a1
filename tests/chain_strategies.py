"""Random conv chains for hypothesis, shared by the CPU schedule test (test_linebuffer.py) and the
GPU kernel test (test_chain_gpu.py): 2 to 4 layers of convs (kernel 1/3/5, stride 1/2, pads,
groups, channel counts that are not multiples of 8), max pools, ReLU and LRN on a small odd input,
starting with a conv or a max pool (what the generator takes)."""

from __future__ import annotations

from hypothesis import strategies as st

from pipeline.core.networks import Layer, Shape, output_shape


@st.composite
def chains(draw, max_channels: int, max_side: int, max_out_per_group: int):
    """(layers, input shape); a layer whose output would not fit ends the chain early."""
    c = draw(st.integers(1, max_channels))
    h, w = draw(st.integers(9, max_side)), draw(st.integers(9, max_side))
    shape = Shape(c, h, w)
    layers = []
    for i in range(draw(st.integers(2, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "maxpool", "relu", "lrn"] if i else ["conv", "maxpool"]))
        if kind == "conv":
            k = draw(st.sampled_from([1, 3, 5]))
            g = draw(st.sampled_from([g for g in (1, 2, 3) if shape.channels % g == 0]))
            layer = Layer(f"l{i}", "conv", out_channels=g * draw(st.integers(1, max_out_per_group)), kernel=k,
                          stride=draw(st.sampled_from([1, 2])), pad=draw(st.integers(0, k // 2)), groups=g)  # fmt: skip
        elif kind == "maxpool":
            k = draw(st.sampled_from([2, 3]))
            layer = Layer(f"l{i}", "maxpool", kernel=k, stride=draw(st.integers(1, k)))
        elif kind == "relu":
            layer = Layer(f"l{i}", "relu")
        else:
            layer = Layer(f"l{i}", "lrn", local_size=draw(st.sampled_from([3, 5])), alpha=1e-2, beta=0.75, k=2.0)
        try:
            nxt = output_shape(layer, shape)
        except ValueError:
            break
        layers.append(layer)
        shape = nxt
    return tuple(layers), Shape(c, h, w)
