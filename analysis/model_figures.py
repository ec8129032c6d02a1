"""Rule model_figures: the analytical model's figures of one network, drawn on any machine.

``dse_pareto``: every partition into fused groups, on-chip against off-chip bytes, with the paper's
design point where the network is the paper's. ``tile_tradeoff_model``: on-chip bytes, DRAM bytes
and extra MACs against the tile size, reuse vs recompute. Names and captions: analysis/figure_list.py.
"""

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from analysis import style
from analysis.derive import finite
from analysis.paper import KB, MB, paper_marks
from pipeline.core.strategy import Strategy


def dse_pareto(dse: pd.DataFrame, out_svg: Path, network: str,
               paper_point: tuple[float, float] | None = None) -> None:  # fmt: skip
    """Every partition of the network into fused groups: on-chip KB vs off-chip MB per image."""
    title = f"Design space of fused groups - {network}"
    d = dse.dropna(subset=["onchip_bytes", "dram_bytes_per_image"]) if not dse.empty else dse
    if d.empty:
        style.placeholder(out_svg, title, "no design-space results from the model")
        return
    fig, axes = style.figure(height_in=5.2)
    ax = axes[0, 0]
    rest, front = d[~d["pareto"]], d[d["pareto"]].sort_values("onchip_bytes")
    ax.scatter(rest["onchip_bytes"] / KB, rest["dram_bytes_per_image"] / MB, s=22, color="#9e9e9e", alpha=0.6,
               label="partition", zorder=2)
    ax.step(front["onchip_bytes"] / KB, front["dram_bytes_per_image"] / MB, where="post", color="#1f77b4", lw=1.5,
            zorder=3)
    ax.scatter(front["onchip_bytes"] / KB, front["dram_bytes_per_image"] / MB, s=50, color="#1f77b4",
               edgecolor="white", label="Pareto-optimal partition", zorder=4)
    if paper_point and all(finite(v) for v in paper_point):
        ax.scatter([paper_point[0] / KB], [paper_point[1] / MB], marker=style.PAPER_MARKER, s=260,
                   color=style.PAPER_COLOR, edgecolor="black", zorder=5, label="paper (FPGA design point)")
    if len(d) > 30:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("on-chip storage (KB)")
    ax.set_ylabel("off-chip feature-map traffic\n(MB per image)")
    ax.set_title(title)
    ax.legend(loc="upper right")
    style.save(fig, out_svg)


def tile_tradeoff_model(pyramids: pd.DataFrame, out_svg: Path, network: str) -> None:
    """Model: on-chip bytes, DRAM bytes and extra MACs against the tile size, reuse vs recompute."""
    title = f"Tile-size trade-off (model) - {network}"
    p = pyramids.dropna(subset=["tile"]) if not pyramids.empty else pyramids
    if p.empty:
        style.placeholder(out_svg, title, "no pyramid results from the model")
        return
    p = p.assign(tile=p["tile"].astype(float))
    fig, axes = style.figure(n_cols=3, height_in=4.2)
    pal = style.strategy_palette()
    groups = [g for g in p["group"].dropna().unique()] or [""]
    styles = ["-", ":", "-.", (0, (5, 1))]
    panels = [("onchip_bytes", KB, "on-chip storage (KB)"),
              ("dram_bytes_per_image_fused", MB, "DRAM traffic (MB per image)"),
              ("extra_macs_per_image", MB, "extra MACs (millions per image)")]  # fmt: skip
    for ax, (col, scale, label) in zip(axes[0], panels):
        for gi, g in enumerate(groups):
            sub = p[p["group"] == g] if g != "" else p
            axes_col = sub["reuse_axes"].fillna("") if "reuse_axes" in sub else pd.Series("", index=sub.index)
            for (strategy, axes_used), s in sub.groupby([sub["strategy"], axes_col]):
                s = s.sort_values("tile")
                name = strategy + (f" in {axes_used}" if axes_used else "") + (f" ({g})" if len(groups) > 1 else "")
                ls = ":" if strategy == Strategy.REUSE and axes_used == "y" else styles[gi % len(styles)]
                ax.plot(s["tile"], s[col] / scale, marker="o", ms=5, color=pal.get(strategy, "#7f7f7f"),
                        ls=ls, label=name)
        if col == "dram_bytes_per_image_fused" and p["dram_bytes_per_image_lbl"].notna().any():
            ax.axhline(p["dram_bytes_per_image_lbl"].max() / MB, color=pal[Strategy.LBL], ls="--", lw=1.2,
                       label="layer-by-layer")
        ax.set_xlabel("tile side T (output pixels)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    axes[0, 1].legend(loc="best", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    style.save(fig, out_svg)


def _dse_pareto(t: Mapping[str, pd.DataFrame], out: Path, network: str) -> None:
    marks = paper_marks(t["paper"])
    point = (marks["onchip_bytes"], marks["fused_bytes"]) if marks.get("network") == network else None
    dse_pareto(t["dse"], out, network, point)


# Figure name (analysis/figure_list.py) -> how to draw it from the rule's input tables.
DRAW = {
    "dse_pareto": _dse_pareto,
    "tile_tradeoff_model": lambda t, out, network: tile_tradeoff_model(t["pyramids"], out, network),
}


def draw(name: str, out: Path, network: str, tables: Mapping[str, pd.DataFrame]) -> None:
    """Draw figure ``name`` from ``tables`` (dse, pyramids, paper); absent tables give placeholders."""
    if name not in DRAW:
        raise ValueError(f"unknown model figure {name!r}; known: {', '.join(DRAW)}")
    DRAW[name]({k: tables.get(k, pd.DataFrame()) for k in ("dse", "pyramids", "paper")}, out, network)


if __name__ == "__main__":  # only under Snakemake's script: directive
    import logging

    from analysis.inputs import read_inputs

    sm = snakemake  # noqa: F821
    logging.basicConfig(filename=sm.log[0], level=logging.INFO)
    inputs = read_inputs(dict(sm.input.items()))
    for name in sm.output.keys():
        draw(name, Path(sm.output[name]), sm.wildcards.network, inputs)
        logging.info("wrote %s", sm.output[name])
