"""One seaborn style for every figure of the report.

The Snakemake report shows an SVG at about 900 px wide, so figures are drawn 9 inches wide at
100 dpi with fonts large enough to read there. Every figure module calls :func:`apply` first, so
all figures share fonts, palette and grid. Variants keep one colour each across figures.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on build machines; SVG output only

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis.aggregate import variant_rank  # noqa: E402

WIDTH_IN = 9.0  # 900 px at 100 dpi: the report's content width
DPI = 100
FONT_SCALE = 1.15
PLACEHOLDER_COLOR = "#888888"
PAPER_COLOR = "#d62728"  # the paper's FPGA figures: always red, always marked with a star
PAPER_MARKER = "*"
MODEL_LINESTYLE = "--"  # analytical model predictions: always dashed

# Fixed colours per variant family so "lbl" is the same colour in every figure.
_FAMILY_COLORS = {
    "lbl": "#4d4d4d",
    "vendor": "#9467bd",
    "reuse": "#1f77b4",
    "recompute": "#ff7f0e",
}
_TILE_SHADES = ("#1f77b4", "#17becf", "#2ca02c", "#8c564b", "#e377c2", "#bcbd22")
_TILE_SHADES_RECOMPUTE = ("#ff7f0e", "#d62728", "#f7b6d2", "#c49c94", "#dbdb8d", "#7f7f7f")


def apply() -> None:
    """Set the shared theme; idempotent, so every drawing function may call it."""
    sns.set_theme(
        context="notebook",
        style="whitegrid",
        font_scale=FONT_SCALE,
        rc={
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "svg.fonttype": "none",  # keep text as text: searchable and sharp in the report
            "axes.titleweight": "bold",
            "axes.titlesize": 13,
            "legend.fontsize": 10,
            "legend.title_fontsize": 10,
            "figure.titlesize": 15,
            "figure.titleweight": "bold",
        },
    )


def figure(n_cols: int = 1, n_rows: int = 1, height_in: float = 5.0, **kw) -> tuple:
    """A figure of the report's width; returns (fig, axes) like ``plt.subplots``."""
    apply()
    return plt.subplots(n_rows, n_cols, figsize=(WIDTH_IN, height_in), squeeze=False, **kw)


def variant_palette(variants) -> dict[str, str]:
    """Stable colours: lbl grey, vendor purple, reuse blues, recompute oranges (by tile order)."""
    colors: dict[str, str] = {}
    reuse = sorted((v for v in variants if "reuse" in v), key=variant_rank)
    recompute = sorted((v for v in variants if "recompute" in v), key=variant_rank)
    for i, v in enumerate(reuse):
        colors[v] = _TILE_SHADES[i % len(_TILE_SHADES)]
    for i, v in enumerate(recompute):
        colors[v] = _TILE_SHADES_RECOMPUTE[i % len(_TILE_SHADES_RECOMPUTE)]
    for v in variants:
        colors.setdefault(v, _FAMILY_COLORS.get(v, "#7f7f7f"))
    return colors


def strategy_palette() -> dict[str, str]:
    """Colours per strategy name (reuse, recompute, lbl, vendor)."""
    return dict(_FAMILY_COLORS)


def variant_order(variants) -> list[str]:
    """lbl first, then reuse and recompute by tile, vendor last: the order of every legend."""
    return sorted(set(variants), key=lambda v: (*variant_rank(v), v))


def save(fig, out_path) -> None:
    """Write the figure as SVG (the report's format) and close it to free memory."""
    fig.savefig(out_path, format="svg", bbox_inches="tight")
    plt.close(fig)
