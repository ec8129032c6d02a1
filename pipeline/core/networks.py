"""Networks as data: load a network YAML into typed layers and infer every feature-map shape.

A network file (``config/networks/<name>.yaml``) is an ordered chain of layers. Shapes follow the
usual floor convention: ``out = (in + 2*pad - kernel) // stride + 1`` for conv and max pool.
Feature maps are NCHW, float32 on the GPU (4 bytes per value).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

NETWORK_DIR = Path(__file__).resolve().parents[2] / "config" / "networks"
LAYER_TYPES = ("conv", "relu", "lrn", "maxpool", "fc")


class NetworkError(ValueError):
    """A network file that cannot describe a valid chain of layers."""


@dataclass(frozen=True)
class Shape:
    channels: int
    height: int
    width: int

    @property
    def values(self) -> int:
        return self.channels * self.height * self.width


@dataclass(frozen=True)
class Layer:
    name: str
    type: str  # one of LAYER_TYPES
    out_channels: int = 0  # conv, fc
    kernel: int = 1  # conv, maxpool (square)
    stride: int = 1
    pad: int = 0
    groups: int = 1  # conv
    local_size: int = 5  # lrn (across channels, Caffe's formula)
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    @property
    def is_spatial(self) -> bool:
        """Conv and max pool change the spatial extent; relu and lrn are pointwise in space."""
        return self.type in ("conv", "maxpool")


@dataclass(frozen=True)
class Network:
    name: str
    source: str
    input: Shape
    layers: tuple[Layer, ...]

    def index(self, layer_name: str) -> int:
        for i, layer in enumerate(self.layers):
            if layer.name == layer_name:
                return i
        raise NetworkError(
            f"network {self.name!r} has no layer {layer_name!r}; "
            f"layers are: {', '.join(l.name for l in self.layers)}"
        )

    def shapes(self, input_shape: Shape | None = None) -> list[Shape]:
        """Shapes of the input followed by every layer's output (len(layers) + 1 entries)."""
        shapes = [input_shape or self.input]
        for layer in self.layers:
            shapes.append(output_shape(layer, shapes[-1]))
        return shapes

    def group(self, first: str, last: str) -> tuple[Layer, ...]:
        """The layers from ``first`` to ``last`` inclusive, in network order."""
        i, j = self.index(first), self.index(last)
        if j < i:
            raise NetworkError(f"fusion group {first}..{last}: {last!r} comes before {first!r}")
        return self.layers[i : j + 1]


def output_shape(layer: Layer, shape: Shape) -> Shape:
    if layer.type in ("relu", "lrn"):
        return shape
    if layer.type == "fc":
        return Shape(layer.out_channels, 1, 1)
    h = (shape.height + 2 * layer.pad - layer.kernel) // layer.stride + 1
    w = (shape.width + 2 * layer.pad - layer.kernel) // layer.stride + 1
    if h < 1 or w < 1:
        raise NetworkError(
            f"layer {layer.name!r} ({layer.kernel}x{layer.kernel}/{layer.stride} pad {layer.pad}) "
            f"does not fit its {shape.height}x{shape.width} input"
        )
    channels = layer.out_channels if layer.type == "conv" else shape.channels
    if layer.type == "conv" and (shape.channels % layer.groups or layer.out_channels % layer.groups):
        raise NetworkError(
            f"layer {layer.name!r}: groups={layer.groups} must divide in_channels={shape.channels} "
            f"and out_channels={layer.out_channels}"
        )
    return Shape(channels, h, w)


def parse_network(data: dict, origin: str = "<dict>") -> Network:
    try:
        layers = []
        for raw in data["layers"]:
            raw = dict(raw)
            if raw.get("type") not in LAYER_TYPES:
                raise NetworkError(
                    f"{origin}: layer {raw.get('name')!r} has type {raw.get('type')!r}; "
                    f"allowed: {', '.join(LAYER_TYPES)}"
                )
            layers.append(Layer(**raw))
        inp = data["input"]
        net = Network(
            name=data["name"],
            source=data.get("source", ""),
            input=Shape(int(inp["channels"]), int(inp["height"]), int(inp["width"])),
            layers=tuple(layers),
        )
    except (KeyError, TypeError) as err:
        raise NetworkError(f"{origin}: not a valid network description ({err})") from err
    names = [l.name for l in net.layers]
    if len(set(names)) != len(names):
        raise NetworkError(f"{origin}: layer names must be unique")
    net.shapes()  # raises on a chain whose shapes do not fit
    return net


def load_network(name_or_path: str | Path) -> Network:
    """Load ``config/networks/<name>.yaml`` (or an explicit path)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = NETWORK_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in NETWORK_DIR.glob("*.yaml"))
        raise NetworkError(f"unknown network {str(name_or_path)!r}; known: {', '.join(known)}")
    return parse_network(yaml.safe_load(path.read_text()), origin=str(path))


def available_networks() -> list[str]:
    return sorted(p.stem for p in NETWORK_DIR.glob("*.yaml"))
