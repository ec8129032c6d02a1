"""One seaborn style for every figure of the report.

The Snakemake report shows an SVG at about 900 px wide, so figures are drawn 9 inches wide at
100 dpi with fonts large enough to read there. Every figure module calls :func:`apply` first, so
all figures share fonts, palette and grid. Variants keep one colour each across figures, chosen
from their record columns (strategy, then tile order), never from their names.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on build machines; SVG output only

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis.rows import variant_order  # noqa: E402
from pipeline.core.strategy import Strategy  # noqa: E402

WIDTH_IN = 9.0  # 900 px at 100 dpi: the report's content width
DPI = 100
FONT_SCALE = 1.15
PLACEHOLDER_COLOR = "#888888"
PAPER_COLOR = "#d62728"  # the paper's FPGA figures: always red, always marked with a star
PAPER_MARKER = "*"
MODEL_LINESTYLE = "--"  # analytical model predictions: always dashed

# Fixed colours per strategy so lbl is the same colour in every figure; a strategy's variants
# (tiles, precisions) take its shades in rank order, the first shade being the strategy's colour.
# Enough shades per strategy that a run's variants do not wrap round (the default run has 9 fused
# variants of each strategy over two networks, and 6 lbl and 6 vendor ones), all distinct
_SHADES = {
    Strategy.LBL: ("#4d4d4d", "#8c8c8c", "#b5b5b5", "#262626", "#6e6e6e", "#d4d4d4", "#a0a0a0", "#3a3a3a"),
    Strategy.VENDOR: ("#9467bd", "#c5b0d5", "#6a3d9a", "#54278f", "#9e9ac8", "#dadaeb"),
    Strategy.REUSE: ("#1f77b4", "#17becf", "#2ca02c", "#8c564b", "#e377c2", "#bcbd22", "#393b79", "#9edae5",
                     "#637939", "#6baed6"),
    Strategy.RECOMPUTE: ("#ff7f0e", "#d62728", "#f7b6d2", "#c49c94", "#dbdb8d", "#7f7f7f", "#843c39", "#ffbb78",
                         "#e7969c", "#bd9e39"),
}
_OTHER = "#7f7f7f"


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


def variant_palette(rows) -> dict[str, str]:
    """Stable colours for the variants of ``rows`` (a frame with the record columns): lbl greys,
    vendor purples, reuse blues, recompute oranges, in rank order (tile, then precision)."""
    strategy = rows.drop_duplicates("variant").set_index("variant")["strategy"] if len(rows) else {}
    colors: dict[str, str] = {}
    used = dict.fromkeys(_SHADES, 0)
    for v in variant_order(rows):
        shades = _SHADES.get(strategy[v], (_OTHER,))
        colors[v] = shades[used.get(strategy[v], 0) % len(shades)]
        if strategy[v] in used:
            used[strategy[v]] += 1
    return colors


def strategy_palette() -> dict[str, str]:
    """Colours per strategy (reuse, recompute, lbl, vendor)."""
    return {str(s): shades[0] for s, shades in _SHADES.items()}


def placeholder(out_svg, title: str, reason: str) -> None:
    """A figure that says plainly why there is nothing to plot (never an empty axis)."""
    from matplotlib.patches import Rectangle

    fig, axes = figure(height_in=2.6)
    ax = axes[0, 0]
    ax.set_axis_off()
    ax.text(0.5, 0.62, title, ha="center", va="center", fontsize=15, weight="bold", transform=ax.transAxes)
    ax.text(0.5, 0.32, reason, ha="center", va="center", fontsize=14, color=PLACEHOLDER_COLOR,
            style="italic", transform=ax.transAxes, wrap=True)
    ax.add_patch(Rectangle((0.02, 0.05), 0.96, 0.9, transform=ax.transAxes, fill=False, ls="--",
                           color=PLACEHOLDER_COLOR))
    save(fig, out_svg)


def y_below(fig, artist) -> float:
    """The figure-fraction y 4 points under ``artist`` (a legend): where a note or a second legend
    goes so that it never sits on the axes; 0 for no artist."""
    if artist is None:
        return 0.0
    y = artist.get_window_extent(fig.canvas.get_renderer()).y0 - 4
    return float(fig.transFigure.inverted().transform((0, y))[1])


def save(fig, out_path) -> None:
    """Write the figure as SVG (the report's format) and close it to free memory."""
    fig.savefig(out_path, format="svg", bbox_inches="tight")
    plt.close(fig)
