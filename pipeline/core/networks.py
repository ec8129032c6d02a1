"""Networks as data: load a network YAML into typed layers and infer every feature-map shape.

A network file (``config/networks/<name>.yaml``) is an ordered chain of layers. Shapes follow the
usual floor convention: ``out = (in + 2*pad - kernel) // stride + 1`` for conv and max pool.
Feature maps are NCHW, float32 on the GPU (4 bytes per value). A malformed file fails with one
NetworkError line naming the file, the layer and the field; LAYER_FIELDS says what each type takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

NETWORK_DIR = Path(__file__).resolve().parents[2] / "config" / "networks"
# The fields each layer type takes besides name and type; True marks a required one. Every value
# is a positive number (pad may be 0); alpha, beta and k are reals, the others integers.
LAYER_FIELDS = {
    "conv": {"out_channels": True, "kernel": True, "stride": False, "pad": False, "groups": False},
    "relu": {},
    "lrn": {"local_size": False, "alpha": False, "beta": False, "k": False},
    "maxpool": {"kernel": True, "stride": False, "pad": False},
    "fc": {"out_channels": True},
}
LAYER_TYPES = tuple(LAYER_FIELDS)
REAL_FIELDS = ("alpha", "beta", "k")
NETWORK_KEYS = ("name", "source", "input", "layers")
INPUT_KEYS = ("channels", "height", "width")


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


def _number_problem(field: str, value) -> str | None:
    """Why ``value`` cannot be ``field`` of a layer or input (None if it can)."""
    kinds = (int, float) if field in REAL_FIELDS else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        if field in REAL_FIELDS:  # PyYAML reads 1e-4 (no dot) as a string
            return f"{value!r} is not a number (write 1.0e-4, not 1e-4)"
        return f"{value!r} is not an integer"
    if value < 0 or (value == 0 and field != "pad"):
        return f"{value!r} must be {'>= 0' if field == 'pad' else '> 0'}"
    return None


def _check_keys(where: str, data, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    if not isinstance(data, dict):
        raise NetworkError(f"{where}: not a mapping; keys: {', '.join(allowed)}")
    for key in data:
        if key not in allowed:
            raise NetworkError(f"{where}: unknown key {key!r}; allowed: {', '.join(allowed)}")
    for key in required:
        if key not in data:
            raise NetworkError(f"{where}: missing key {key!r}; required: {', '.join(required)}")


def check_network_data(data, origin: str = "<dict>") -> None:
    """Raise NetworkError, one line naming the file, layer and field, on a malformed description."""
    _check_keys(origin, data, NETWORK_KEYS, required=("name", "input", "layers"))
    _check_keys(f"{origin}: input", data["input"], INPUT_KEYS, required=INPUT_KEYS)
    if not isinstance(data["name"], str):
        raise NetworkError(f"{origin}: name: {data['name']!r} is not a string")
    for key in INPUT_KEYS:
        if problem := _number_problem(key, data["input"][key]):
            raise NetworkError(f"{origin}: input {key}: {problem}")
    if not isinstance(data["layers"], list) or not data["layers"]:
        raise NetworkError(f"{origin}: layers must be a non-empty list")
    for i, raw in enumerate(data["layers"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise NetworkError(f"{origin}: layer {i + 1} is not a mapping with a name")
        fields = LAYER_FIELDS.get(raw.get("type"))
        if fields is None:
            types = ", ".join(LAYER_TYPES)
            raise NetworkError(
                f"{origin}: layer {raw['name']!r} has type {raw.get('type')!r}; allowed: {types}"
            )
        where = f"{origin}: layer {raw['name']!r} ({raw['type']})"
        for field, value in raw.items():
            if field in ("name", "type"):
                continue
            if field not in fields:
                allowed = ", ".join(fields) or "none besides name, type"
                raise NetworkError(f"{where}: unknown field {field!r}; allowed: {allowed}")
            if problem := _number_problem(field, value):
                raise NetworkError(f"{where}: {field}: {problem}")
        required = [field for field, needed in fields.items() if needed]
        for field in required:
            if field not in raw:
                raise NetworkError(f"{where}: missing field {field!r}; required: {', '.join(required)}")


def parse_network(data: dict, origin: str = "<dict>") -> Network:
    check_network_data(data, origin)
    inp = data["input"]
    net = Network(
        name=data["name"],
        source=str(data.get("source", "")),
        input=Shape(inp["channels"], inp["height"], inp["width"]),
        layers=tuple(Layer(**raw) for raw in data["layers"]),
    )
    names = [l.name for l in net.layers]
    for name in names:
        if names.count(name) > 1:
            raise NetworkError(f"{origin}: layer name {name!r} appears {names.count(name)} times")
    try:
        net.shapes()  # raises on a chain whose shapes do not fit
    except NetworkError as err:
        raise NetworkError(f"{origin}: {err}") from None
    return net


def load_network(name_or_path: str | Path) -> Network:
    """Load ``config/networks/<name>.yaml`` (or an explicit path)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = NETWORK_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in NETWORK_DIR.glob("*.yaml"))
        raise NetworkError(f"unknown network {str(name_or_path)!r}; known: {', '.join(known)}")
    net = parse_network(yaml.safe_load(path.read_text()), origin=str(path))
    if net.name != path.stem:
        raise NetworkError(f"{path}: name {net.name!r} differs from the file name {path.stem!r}")
    return net


def available_networks() -> list[str]:
    return sorted(p.stem for p in NETWORK_DIR.glob("*.yaml"))
