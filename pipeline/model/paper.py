"""The paper's figures (reports/paper_figures.yaml) beside the analytical model.

Every figure is computed with the model's stated conventions and then with a few honest
alternatives (bytes per value, decimal vs binary units, how layer-by-layer execution groups
layers into passes, which buffers count, which AlexNet). Each combination is its own row, so the
reader sees which convention the paper most likely used. Nothing here is fitted: the model is
never adjusted to reach a figure.
"""

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import yaml

from pipeline.model.costs import group_costs, group_input_shape, onchip_buffers
from pipeline.core.networks import Network, load_network

ROOT = Path(__file__).resolve().parents[2]
FIGURES_PATH = ROOT / "reports" / "paper_figures.yaml"
MATCH_TOLERANCE = 0.02  # a row "matches" when model/paper is within 2 %

# How the paper's unit may be read: label -> size in bytes (or plain scale).
UNIT_READINGS: dict[str, dict[str, float]] = {
    "MB": {"MB=10^6 B": 1e6, "MiB=2^20 B": 2.0**20},
    "KB": {"KB=10^3 B": 1e3, "KiB=2^10 B": 2.0**10},
}
BYTES_PER_VALUE = (4, 2)  # FP32 (ours) and 16-bit (a common FPGA word)
DEFAULTS = {"bytes/value": "4", "unit": None, "lbl": "separate", "alexnet": "caffe", "buffers": "all",
            "ratio": "performed/useful", "onchip": "reuse x,y: tile + reuse buffers"}


def load_paper_figures(path: str | Path = FIGURES_PATH) -> dict[str, Any]:
    """The YAML as a dict: ``citation`` and ``figures`` (a list, each with id/value/unit/...)."""
    data = yaml.safe_load(Path(path).read_text())
    ids = [f["id"] for f in data["figures"]]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: figure ids must be unique")
    return data


def alexnet_one_tower(net: Network) -> Network:
    """AlexNet's conv1..conv2 as one of the two GPU towers of Krizhevsky et al. (2012), Fig. 2.

    The original network splits conv1 (96 filters) and conv2 (256) across two GPUs; one tower
    has 48 and 128 filters, and conv2 sees only its tower's 48 maps. Layers after conv2 are
    dropped because the towers exchange maps at conv3. Used as an alternative reading of the
    paper's AlexNet, which may count one tower.
    """
    layers = []
    for layer in net.layers[: net.index("pool2") + 1]:
        if layer.name == "conv1":
            layer = dataclasses.replace(layer, out_channels=48)
        elif layer.name == "conv2":
            layer = dataclasses.replace(layer, out_channels=128, groups=1)
        layers.append(layer)
    return dataclasses.replace(net, name="alexnet_tower", layers=tuple(layers))


Candidate = tuple[dict[str, str], float]  # (convention, model value in the figure's unit)


def _byte_readings(unit: str, bytes_value_4: float) -> Iterator[Candidate]:
    """The same byte count at 4 and 2 bytes per value, read in decimal and binary units."""
    for bpv in BYTES_PER_VALUE:
        for label, size in UNIT_READINGS[unit].items():
            yield {"bytes/value": str(bpv), "unit": label}, bytes_value_4 * bpv / 4 / size


def _vgg_costs(fig: dict, strategy: str = "reuse"):
    net = load_network(fig["network"])
    first, last = fig["group"]
    return group_costs(net.group(first, last), group_input_shape(net, first), 1, strategy)


def _vgg_lbl_dram(fig: dict) -> Iterator[Candidate]:
    c = _vgg_costs(fig)
    for lbl, b in [("separate", c.dram_bytes_per_image_lbl), ("merged", c.dram_bytes_per_image_lbl_merged),
                   ("pool_on_load", c.dram_bytes_per_image_lbl_pool_on_load)]:
        for conv, value in _byte_readings(fig["unit"], b):
            yield {"lbl": lbl, **conv}, value


def _vgg_fused_dram(fig: dict) -> Iterator[Candidate]:
    yield from _byte_readings(fig["unit"], _vgg_costs(fig).dram_bytes_per_image_fused)


def _vgg_reduction(fig: dict) -> Iterator[Candidate]:
    c = _vgg_costs(fig)
    for lbl, b in [("separate", c.dram_bytes_per_image_lbl), ("merged", c.dram_bytes_per_image_lbl_merged),
                   ("pool_on_load", c.dram_bytes_per_image_lbl_pool_on_load)]:
        yield {"lbl": lbl}, 100.0 * (1.0 - c.dram_bytes_per_image_fused / b)


def _vgg_onchip(fig: dict) -> Iterator[Candidate]:
    reuse, rec = _vgg_costs(fig, "reuse"), _vgg_costs(fig, "recompute")
    for what, b in [("reuse x,y: tile + reuse buffers", reuse.onchip_bytes),
                    ("reuse x,y: reuse buffers (BL+BT) only", reuse.onchip_reuse_bytes),
                    ("recompute: tile buffers", rec.onchip_bytes)]:
        for conv, value in _byte_readings(fig["unit"], b):
            yield {"onchip": what, **conv}, value


def _alexnets(fig: dict) -> Iterator[tuple[str, Network]]:
    net = load_network(fig["network"])
    yield "caffe", net
    yield "one GPU tower (48/128 filters)", alexnet_one_tower(net)


def _alexnet_extra_macs(fig: dict) -> Iterator[Candidate]:
    first, last = fig["group"]
    for name, net in _alexnets(fig):
        c = group_costs(net.group(first, last), group_input_shape(net, first), 1, "recompute")
        yield {"alexnet": name}, c.extra_macs_per_image / 1e6


def _alexnet_factor(fig: dict) -> Iterator[Candidate]:
    first, last = fig["group"]
    net = load_network(fig["network"])
    c = group_costs(net.group(first, last), group_input_shape(net, first), 1, "recompute")
    yield {"ratio": "performed/useful"}, c.performed_macs_per_image / c.useful_macs_per_image
    yield {"ratio": "extra/useful"}, c.extra_macs_per_image / c.useful_macs_per_image


def _alexnet_reuse_storage(fig: dict) -> Iterator[Candidate]:
    first, last = fig["group"]
    for name, net in _alexnets(fig):
        bufs = onchip_buffers(net.group(first, last), group_input_shape(net, first), 1, "reuse", ("x", "y"))
        for which, keep in [("all", lambda b: True), ("intermediate maps only", lambda b: not b.is_group_input)]:
            values = sum(b.reuse_values for b in bufs if keep(b))
            for conv, value in _byte_readings(fig["unit"], values * 4):
                yield {"alexnet": name, "buffers": which, **conv}, value


CANDIDATES: dict[str, Callable[[dict], Iterator[Candidate]]] = {
    "vgg_lbl_dram": _vgg_lbl_dram,
    "vgg_fused_dram": _vgg_fused_dram,
    "vgg_dram_reduction": _vgg_reduction,
    "vgg_onchip": _vgg_onchip,
    "alexnet_recompute_extra_macs": _alexnet_extra_macs,
    "alexnet_recompute_factor": _alexnet_factor,
    "alexnet_reuse_storage": _alexnet_reuse_storage,
}


def _is_default(conv: dict[str, str]) -> bool:
    """The row computed with the model's own conventions (FP32, decimal units, Caffe AlexNet...)."""
    for key, value in conv.items():
        if key == "unit":
            if not value.startswith(("MB=", "KB=")):
                return False
        elif DEFAULTS.get(key) != value:
            return False
    return True


def _note(fig: dict, conv: dict[str, str], ratio: float, is_default: bool) -> str:
    assumes = ", ".join(f"{k} {v}" for k, v in conv.items()) or "model defaults"
    if abs(ratio - 1.0) <= MATCH_TOLERANCE:
        text = f"matches within {100 * abs(ratio - 1):.2f} % assuming {assumes}"
    else:
        text = f"model is {ratio:.2f}x the paper assuming {assumes}"
    if is_default:
        text += " (model defaults)"
    if fig.get("interpretation"):
        text += "; interpretation flagged in paper_figures.yaml"
    if not str(fig.get("checked", "")).startswith("authors"):
        text += "; paper value not checked against the paper's text"
    return text


def paper_comparison(figures_path: str | Path = FIGURES_PATH) -> pd.DataFrame:
    """One row per (paper figure, convention): paper value, model value, ratio and a note.

    ``best`` marks, per figure, the convention whose value is closest to the paper's (smallest
    |log ratio|); ``default`` marks the row computed with the model's own conventions.
    """
    data = load_paper_figures(figures_path)
    rows = []
    for fig in data["figures"]:
        if fig["id"] not in CANDIDATES:
            raise ValueError(f"no model computation for paper figure {fig['id']!r}; known: {', '.join(CANDIDATES)}")
        for conv, value in CANDIDATES[fig["id"]](fig):
            ratio = value / fig["value"]
            default = _is_default(conv)
            rows.append({
                "figure": fig["id"], "quantity": fig["quantity"], "unit": fig["unit"],
                "paper_value": float(fig["value"]), "model_value": float(value), "ratio_model_to_paper": ratio,
                "convention": "; ".join(f"{k}={v}" for k, v in conv.items()), "default": default,
                "note": _note(fig, conv, ratio, default),
            })
    df = pd.DataFrame(rows)
    dist = df["ratio_model_to_paper"].map(lambda r: abs(math.log(r)) if r > 0 else math.inf)
    df["best"] = dist == dist.groupby(df["figure"]).transform("min")
    return df


def write_paper_comparison(out_csv: str | Path, figures_path: str | Path = FIGURES_PATH) -> pd.DataFrame:
    """Compute the comparison and write it as CSV (the Snakemake entry)."""
    df = paper_comparison(figures_path)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    return df
