"""Rule model_figures: the analytical model's figures of one network, drawn on any machine.

``dse_pareto``: every partition into fused groups, on-chip against off-chip bytes, with the paper's
design point where the network is the paper's. ``tile_tradeoff_model``: on-chip bytes, DRAM bytes
and extra MACs against the tile size, reuse vs recompute. ``pyramid``: one tile's pyramid and its
neighbour's overlap (analysis/pyramid_figure.py). Names and captions: analysis/figure_list.py.
"""

import math
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from analysis import style
from analysis.derive import finite
from analysis.labels import Label, along, place_labels
from analysis.paper import KB, MB, paper_marks
from analysis.pyramid_figure import draw_pyramid
from pipeline.core.strategy import Strategy


def partition_label(partition: str) -> str:
    """'conv1_1+conv1_2+conv2_1 | conv2_2+conv3_1' -> 'conv1_1..conv2_1 | conv2_2..conv3_1'."""
    groups = [g.strip().split("+") for g in str(partition).split("|")]
    return " | ".join(g[0] if len(g) == 1 else f"{g[0]}..{g[-1]}" for g in groups)


def dse_pareto(dse: pd.DataFrame, out_svg: Path, network: str, paper: Mapping[str, float] | None = None) -> None:
    """Every partition of the network into fused groups: on-chip KB vs off-chip MB per image, the
    Pareto points named by their groups; where the paper measured this network, its design point and
    the model's one-group point counted as the paper counts storage (reuse buffers only)."""
    title = f"Design space of fused groups - {network}"
    d = dse.dropna(subset=["onchip_bytes", "dram_bytes_per_image"]) if not dse.empty else dse
    if d.empty:
        style.placeholder(out_svg, title, "no design-space results from the model")
        return
    fig, axes = style.figure(height_in=5.6)
    ax = axes[0, 0]
    rest, front = d[~d["pareto"]], d[d["pareto"]].sort_values("onchip_bytes")
    ax.scatter(rest["onchip_bytes"] / KB, rest["dram_bytes_per_image"] / MB, s=22, color="#9e9e9e", alpha=0.6,
               label="partition (tile + reuse buffers)", zorder=2)
    ax.step(front["onchip_bytes"] / KB, front["dram_bytes_per_image"] / MB, where="post", color="#1f77b4", lw=1.5,
            zorder=3)
    ax.scatter(front["onchip_bytes"] / KB, front["dram_bytes_per_image"] / MB, s=50, color="#1f77b4",
               edgecolor="white", label="Pareto-optimal partition", zorder=4)
    xs = list(d["onchip_bytes"] / KB)
    ys = list(d["dram_bytes_per_image"] / MB)
    paper = paper or {}
    star = (paper.get("onchip_bytes"), paper.get("fused_bytes"))
    mine = (paper.get("model_onchip_bytes_paper_reading"), paper.get("model_fused_bytes_paper_reading"))
    notes = []
    if paper.get("network") == network and all(finite(v) for v in star):
        ax.scatter([star[0] / KB], [star[1] / MB], marker=style.PAPER_MARKER, s=260, color=style.PAPER_COLOR,
                   edgecolor="black", zorder=6, label="paper (FPGA design point)")
        xs.append(star[0] / KB)
        ys.append(star[1] / MB)
        if all(finite(v) for v in mine):
            one = d[d["n_groups"] == 1] if "n_groups" in d else d.iloc[0:0]
            ax.scatter([mine[0] / KB], [mine[1] / MB], s=70, facecolor="white", edgecolor=style.PAPER_COLOR, lw=1.8,
                       zorder=5, label="model, one group, reuse buffers only\n(the paper's storage convention)")
            if len(one):
                ax.annotate("", (mine[0] / KB, mine[1] / MB),
                            (one["onchip_bytes"].iloc[0] / KB, one["dram_bytes_per_image"].iloc[0] / MB),
                            arrowprops=dict(arrowstyle="->", color=style.PAPER_COLOR, lw=1.0, shrinkA=6, shrinkB=6))
            xs.append(mine[0] / KB)
            ys.append(mine[1] / MB)
            notes.append("Blue and grey points count tile + reuse buffers (the model's default). The paper counts "
                         "only the reuse buffers:\nthe same five-layer group counted that way (hollow red, arrow) "
                         "sits beside the star. Units read as the paper reading reads them (KiB, MiB).")
    log = len(d) > 30
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    xr, yr = max(xs) - min(xs), max(ys) - min(ys)
    if not log:
        ax.set_xlim(min(xs) - 0.08 * xr - 1, max(xs) + 0.35 * xr + 1)
        ax.set_ylim(min(ys) - 0.1 * yr, max(ys) + 0.12 * yr)
    ax.set_xlabel("on-chip storage (KB)")
    ax.set_ylabel("off-chip feature-map traffic\n(MB per image)")
    ax.set_title(title)
    fig.tight_layout()
    legend = fig.legend(*ax.get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
                        frameon=False, fontsize=9)
    labels = [Label(partition_label(r["partition"]), (r["onchip_bytes"] / KB, r["dram_bytes_per_image"] / MB),
                    "#08519c") for _, r in front.iterrows()]
    obstacles = list(zip(xs, ys))
    steps = front.sort_values("onchip_bytes")
    sx, sy = list(steps["onchip_bytes"] / KB), list(steps["dram_bytes_per_image"] / MB)
    stair_x, stair_y = [], []
    for (x0, y0), x1 in zip(zip(sx, sy), sx[1:]):
        stair_x += [x0, x1]
        stair_y += [y0, y0]
    if not log:
        obstacles += along(stair_x, stair_y, per_segment=8)
    place_labels(ax, labels, obstacles=obstacles, fontsize=8.5)
    if notes:
        fig.text(0.5, style.y_below(fig, legend), "\n".join(notes), ha="center", va="top", fontsize=9, color="#444444")
    style.save(fig, out_svg)


LBL_LINES = (  # pyramids.csv column -> how layer-by-layer execution is counted
    ("dram_bytes_per_image_lbl", "every layer its own pass (project default)"),
    ("dram_bytes_per_image_lbl_pool_on_load", "pool on the next conv's load (paper reading)"),
)


def lbl_kernels_dram(network: str, first: str, last: str, bytes_per_value: int) -> float:
    """Feature-map bytes per image as the project's lbl CUDA kernels move them (conv with its ReLU,
    then every LRN and pool its own kernel): the convention of the plan's lbl model line."""
    from pipeline.core.networks import load_network
    from pipeline.model.costs import group_input_shape
    from pipeline.stages.plan import lbl_gpu_dram_bytes_per_image

    net = load_network(network)
    return float(lbl_gpu_dram_bytes_per_image(net.group(first, last), group_input_shape(net, first), bytes_per_value))


def tile_tick_labels(tiles: list[float]) -> list[str]:
    """Tick labels for tile sides on a log2 axis; of two ticks closer than half an octave only one
    is labelled (the power of two), so 7 and 8 do not print over each other."""
    labels: list[str] = []
    last = None
    for t in tiles:
        if last is not None and math.log2(t) - math.log2(tiles[last]) < 0.5:
            if math.log2(t).is_integer() and not math.log2(tiles[last]).is_integer():
                labels[last] = ""
                labels.append(f"{t:g}")
                last = len(labels) - 1
            else:
                labels.append("")
            continue
        labels.append(f"{t:g}")
        last = len(labels) - 1
    return labels


def tile_tradeoff_model(pyramids: pd.DataFrame, out_svg: Path, network: str) -> None:
    """Model: on-chip bytes, DRAM bytes and extra MACs against the tile size, reuse vs recompute,
    with layer-by-layer traffic under each counting convention; log axes where the values span
    decades."""
    title = f"Tile-size trade-off (model) - {network}"
    p = pyramids.dropna(subset=["tile"]) if not pyramids.empty else pyramids
    if not p.empty:
        p = p[p["tile"].astype(str).str.fullmatch(r"\d+(\.0)?")]
    if p.empty:
        style.placeholder(out_svg, title, "no pyramid results from the model")
        return
    p = p.assign(tile=p["tile"].astype(float))
    fig, axes = style.figure(n_cols=3, height_in=4.4)
    pal = style.strategy_palette()
    groups = [g for g in p["group"].dropna().unique()] or [""]
    styles = ["-", ":", "-.", (0, (5, 1))]
    panels = [("onchip_bytes", KB, "on-chip storage (KB)"),
              ("dram_bytes_per_image_fused", MB, "DRAM traffic (MB per image)"),
              ("extra_macs_per_image", 1e6, "extra MACs (millions per image)")]  # fmt: skip
    tiles = sorted(p["tile"].unique())
    zero_extra: list[str] = []
    for ax, (col, scale, label) in zip(axes[0], panels):
        for gi, g in enumerate(groups):
            sub = p[p["group"] == g] if g != "" else p
            axes_col = (sub["reuse_axes"].astype(object).where(sub["reuse_axes"].notna(), "") if "reuse_axes" in sub
                        else pd.Series("", index=sub.index))
            for (strategy, axes_used), s in sub.groupby([sub["strategy"], axes_col]):
                s = s.sort_values("tile")
                name = strategy + (f" in {axes_used}" if axes_used else "") + (f" ({g})" if len(groups) > 1 else "")
                ls = ":" if strategy == Strategy.REUSE and axes_used == "y" else styles[gi % len(styles)]
                y = s[col] / scale
                if col == "extra_macs_per_image" and (y <= 0).all():
                    zero_extra.append(f"{name} at every tile")
                    ax.plot([], [], marker="o", ms=5, color=pal.get(strategy, "#7f7f7f"), ls=ls, label=name)
                    continue
                ok = y > 0
                if col == "extra_macs_per_image" and not ok.all():
                    zero_extra.append(f"{name} at T = {', '.join(f'{t:g}' for t in s['tile'][~ok])}")
                ax.plot(s["tile"][ok], y[ok], marker="o", ms=5, color=pal.get(strategy, "#7f7f7f"), ls=ls,
                        label=name)
        if col == "dram_bytes_per_image_fused":
            first_row = p.iloc[0]
            lines = [(first_row.get(c), lab) for c, lab in LBL_LINES if c in p and finite(first_row.get(c))]
            try:
                bpv = int(first_row.get("bytes_per_value")) if finite(first_row.get("bytes_per_value")) else 4
                lines.insert(1, (lbl_kernels_dram(network, first_row["first_layer"], first_row["last_layer"], bpv),
                                 "conv+ReLU one pass, LRN and pool their own\n(as the lbl kernels run; the DRAM "
                                 "figure's model line adds weights/batch)"))
            except Exception:  # another network file than the one modelled: leave that line out
                pass
            for (v, lab), ls in zip(lines, ("--", "-.", (0, (1, 1)))):
                ax.axhline(v / MB, color=pal[Strategy.LBL], ls=ls, lw=1.2, label=f"layer by layer, {lab}: "
                                                                                 f"{v / MB:.1f} MB")
        ax.set_xlabel("tile side T (output px)")
        ax.set_ylabel(label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(tiles, tile_tick_labels(tiles), fontsize=9)
        ax.minorticks_off()
        ax.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    handles, labels = [], []
    for a in axes[0]:
        for h, lab in zip(*a.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    legend = fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False,
                        fontsize=9)
    notes = ["Log axes. Reuse in x and y (the paper's scheme) computes every value once; reuse in y only (the GPU "
             "kernels' column strips)\nrecomputes the overlap between strips in x, so it has extra MACs. The fused "
             "traffic is input + output, whatever the tile."]
    if zero_extra:
        notes.append(f"0 extra MACs, not on the log axis: {'; '.join(zero_extra)} (one tile covers the map, or "
                     "every value is computed once).")
    fig.text(0.5, style.y_below(fig, legend), "\n".join(textwrap.fill(n, 125) if "\n" not in n else n for n in notes), ha="center",
             va="top", fontsize=9, color="#444444")
    style.save(fig, out_svg)


# Figure name (analysis/figure_list.py) -> how to draw it from the rule's input tables.
DRAW = {
    "dse_pareto": lambda t, out, network: dse_pareto(t["dse"], out, network, paper_marks(t["paper"])),
    "tile_tradeoff_model": lambda t, out, network: tile_tradeoff_model(t["pyramids"], out, network),
    "pyramid": lambda t, out, network: draw_pyramid(t["pyramids"], out, network),
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
