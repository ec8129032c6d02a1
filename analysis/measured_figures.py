"""Rule measured_figures: what the GPU measured, one SVG per figure, for the kernels' network.

Each figure draws what the tidy tables hold; where nothing was measured it writes a clearly
labelled placeholder instead of an empty axis. A figure shows one source: this run's GPU when it
measured anything, else the newest archived run, and its title says which ("archived (card,
date)"), so archived numbers are never taken for the reader's own. Names and captions:
analysis/figure_list.py.
"""

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib.ticker as mticker
import numpy as np
import pandas as pd

from analysis import style
from analysis.derive import finite
from analysis.paper import KB, MB, paper_marks
from analysis.rows import measured, pick_source, variant_order
from analysis.sources import SOURCE_THIS_RUN, source_title
from pipeline.core.strategy import FUSED_STRATEGIES, Strategy

TERA = 1e12
NO_GPU_TEXT = "no GPU measurements in this run"
FUSED = [str(s) for s in FUSED_STRATEGIES]


def placeholder(out_svg: Path, title: str, reason: str = NO_GPU_TEXT) -> None:
    """The figure that says why there is nothing to plot; by default: no GPU measured."""
    style.placeholder(out_svg, title, reason)


def _source_suffix(df: pd.DataFrame, source: str, gpu: str) -> str:
    names = df.loc[(df["source"] == source) & (df["gpu"] == gpu), "gpu_name"].dropna() if "gpu_name" in df else []
    card = names.iloc[0] if len(names) else gpu
    label = f"{source_title(source)}: {card}"
    if source != SOURCE_THIS_RUN and not _this_run_has(df):
        label += f"\n({NO_GPU_TEXT})"
    return label


def _this_run_has(df: pd.DataFrame) -> bool:
    return bool((df["source"] == SOURCE_THIS_RUN).any())


def _select(tidy: pd.DataFrame, network: str, title: str, out_svg: Path) -> tuple[pd.DataFrame, str] | None:
    """Measured rows of one source for a figure, or None after drawing the placeholder."""
    m = measured(tidy, network)
    pick = pick_source(m)
    if pick is None:
        placeholder(out_svg, title)
        return None
    sub = m[(m["source"] == pick[0]) & (m["gpu"] == pick[1])]
    return sub, _source_suffix(m, *pick)


def _batch_axis(ax, batches) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(mticker.FixedLocator(sorted(set(batches))))
    ax.xaxis.set_major_formatter(mticker.FormatStrFormatter("%d"))
    ax.xaxis.set_minor_locator(mticker.NullLocator())
    ax.set_xlabel("batch size (images)")


def _legend_below(fig, ax, ncol: int = 4, **kw) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, frameon=False, **kw)


def roofline(tidy: pd.DataFrame, kernels: pd.DataFrame, ceilings: pd.DataFrame, out_svg: Path, network: str,
             batch: int | None = None) -> None:
    """Hierarchical roofline: each variant (whole pass) and each lbl kernel at DRAM, L2, L1 intensity."""
    title = f"Hierarchical roofline - {network}"
    sel = _select(tidy, network, title, out_svg)
    if sel is None:
        return
    sub, suffix = sel
    source, gpu = sub["source"].iloc[0], sub["gpu"].iloc[0]
    sub = sub.dropna(subset=["achieved_flops_per_s"])
    if sub.empty:
        placeholder(out_svg, title, f"{suffix}: no FLOP counts (Nsight Compute did not run)")
        return
    batch = batch or int(sub["batch"].max())
    sub = sub[sub["batch"] == batch]
    ceil = ceilings[(ceilings["source"] == source) & (ceilings["gpu"] == gpu)] if not ceilings.empty else ceilings
    ceil = ceil.iloc[0] if len(ceil) else pd.Series(dtype=float)
    k = kernels
    if k is not None and not k.empty:
        k = k[(k["source"] == source) & (k["gpu"] == gpu) & (k["network"] == network) & (k["batch"] == batch)
              & (k["strategy"] == Strategy.LBL)].dropna(subset=["achieved_flops_per_s"])
    fig, axes = style.figure(n_cols=2, height_in=5.4, sharey=True)
    levels = [("dram", "o", "DRAM"), ("l2", "s", "L2"), ("l1", "^", "L1")]
    pal = style.variant_palette(sub)
    xs_all: list[float] = []
    ys_all: list[float] = []
    for ax, frame, label_col, what in ((axes[0, 0], sub, "variant", "whole forward pass per variant"),
                                       (axes[0, 1], k, "kernel", "layer-by-layer kernels")):
        if frame is None or frame.empty:
            ax.text(0.5, 0.5, "no per-kernel profile", ha="center", transform=ax.transAxes,
                    color=style.PLACEHOLDER_COLOR)
            ax.set_title(what, fontsize=12)
            continue
        for i, (_, r) in enumerate(frame.iterrows()):
            color = pal.get(r["variant"], "#4d4d4d") if label_col == "variant" else style.sns.color_palette("tab10")[i % 10]
            pts = [(r[f"ai_{lvl}_flops_per_byte"], r["achieved_flops_per_s"]) for lvl, _, _ in levels]
            ok = [(x, y) for x, y in pts if finite(x) and x > 0 and finite(y) and y > 0]
            if not ok:
                continue
            ax.plot([x for x, _ in ok], [y / TERA for _, y in ok], color=color, lw=0.8, alpha=0.6)
            for (lvl, marker, _), (x, y) in zip(levels, pts):
                if finite(x) and x > 0 and finite(y) and y > 0:
                    ax.scatter(x, y / TERA, marker=marker, s=45, color=color, edgecolor="black", lw=0.4, zorder=4)
                    xs_all.append(x)
                    ys_all.append(y / TERA)
            if label_col == "variant":  # variants sit close together: name them in a legend
                ax.plot([], [], color=color, marker="o", ls="", label=r["variant"])
            else:
                x0, y0 = ok[0]
                ax.annotate(str(r[label_col]), (x0, y0 / TERA), xytext=(-4, 4), textcoords="offset points",
                            ha="right", fontsize=9, color=color)
        ax.set_title(what, fontsize=12)
    if not xs_all:
        placeholder(out_svg, title, f"{suffix}: no positive intensities to plot")
        return
    x_lo, x_hi = min(xs_all) / 4, max(xs_all) * 4
    xs = np.logspace(math.log10(x_lo), math.log10(x_hi), 100)
    peak = ceil.get("fp32_flop_per_s", math.nan)
    for ax in axes[0]:
        for key, name, ls in (("dram_bytes_per_s", "DRAM", "-"), ("l2_bytes_per_s", "L2", "--")):
            bw = ceil.get(key, math.nan)
            if finite(bw):
                roof = np.minimum(bw * xs, peak) if finite(peak) else bw * xs
                ax.plot(xs, roof / TERA, color="black", ls=ls, lw=1.1, label=f"{name} {bw / TERA:.1f} TB/s (measured)")
        if finite(peak):
            ax.axhline(peak / TERA, color="#b22222", lw=1.3, label=f"FP32 peak {peak / TERA:.0f} TFLOP/s (measured)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(x_lo, x_hi)
        ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    axes[0, 0].set_ylabel("achieved TFLOP/s")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    variant_handles = [h for h, lab in zip(handles, labels) if lab in set(sub["variant"])]
    handles = [h for h, lab in zip(handles, labels) if lab not in set(sub["variant"])]
    if variant_handles:
        axes[0, 0].legend(handles=variant_handles, loc="lower right", fontsize=8, title="variant")
    for _, marker, name in levels:
        handles.append(style.plt.Line2D([], [], marker=marker, ls="", color="#4d4d4d", label=f"{name} intensity"))
    if not finite(peak) and not ceil.get("has_ceilings", False):
        labels_note = " (no measured ceilings)"
    else:
        labels_note = ""
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False)
    fig.suptitle(f"{title}, batch {batch}{labels_note}\n{suffix}", fontsize=13)
    fig.tight_layout()
    style.save(fig, out_svg)


def bandwidth_saving(tidy: pd.DataFrame, out_svg: Path, network: str, ceilings: pd.DataFrame | None = None,
                     paper: Mapping[str, float] | None = None) -> None:  # fmt: skip
    """DRAM bytes per image by variant vs batch; model dashed; L2 crossover and paper figure marked.

    The compulsory traffic and the largest intermediate map are the plan's columns of the rows.

    ``paper`` may hold ``lbl_bytes``, ``fused_bytes`` (per image) and ``network`` (the network the
    paper measured): drawn as red stars when it is this network, else quoted in a note.
    """
    title = f"DRAM traffic per image - {network}"
    sel = _select(tidy, network, title, out_svg)
    if sel is None:
        return
    sub, suffix = sel
    sub = sub.dropna(subset=["dram_bytes_per_image"])
    if sub.empty:
        placeholder(out_svg, title, f"{suffix}: no DRAM byte counts (Nsight Compute did not run)")
        return
    allrows = tidy[(tidy["network"] == network)]
    fig, axes = style.figure(height_in=5.4)
    ax = axes[0, 0]
    order = variant_order(sub)
    pal = style.variant_palette(sub)
    for v in order:
        s = sub[sub["variant"] == v].sort_values("batch")
        ax.plot(s["batch"], s["dram_bytes_per_image"] / MB, marker="o", color=pal[v], label=v, lw=1.8)
        m = allrows[(allrows["variant"] == v)].drop_duplicates("batch").sort_values("batch")
        if m["model_dram_bytes_per_image"].notna().any():
            ax.plot(m["batch"], m["model_dram_bytes_per_image"] / MB, ls=style.MODEL_LINESTYLE, color=pal[v], lw=1.1,
                    alpha=0.8)
    comp = allrows.drop_duplicates("batch").sort_values("batch")
    if "compulsory_dram_bytes_per_image" in comp and comp["compulsory_dram_bytes_per_image"].notna().any():
        ax.plot(comp["batch"], comp["compulsory_dram_bytes_per_image"] / MB, color="black", ls=":", lw=1.4,
                label="compulsory (input + output + weights/batch)")
    ax.plot([], [], ls=style.MODEL_LINESTYLE, color="#4d4d4d", label="model prediction (dashed)")
    batches = sorted(set(sub["batch"]) | set(comp["batch"]))
    _batch_axis(ax, batches)
    l2 = math.nan
    if ceilings is not None and not ceilings.empty:
        c = ceilings[(ceilings["source"] == sub["source"].iloc[0]) & (ceilings["gpu"] == sub["gpu"].iloc[0])]
        l2 = float(c["l2_bytes"].iloc[0]) if len(c) else math.nan
    inter = sub["largest_intermediate_bytes_per_image"].max()
    if finite(l2) and finite(inter) and inter > 0:
        cross = l2 / inter
        ax.axvline(cross, color="#2ca02c", ls="-.", lw=1.3)
        ax.annotate(f"L2 ({l2 / 2**20:.0f} MiB) holds the largest\nintermediate map up to batch {cross:.0f}",
                    (cross, 0.97), xycoords=("data", "axes fraction"), xytext=(-4, 0), textcoords="offset points",
                    va="top", ha="right", fontsize=9, color="#2ca02c")
    if paper:
        if paper.get("network") == network:
            for key, lab in (("lbl_bytes", "paper layer-by-layer"), ("fused_bytes", "paper fused")):
                if finite(paper.get(key)):
                    ax.scatter([max(batches)], [paper[key] / MB], marker=style.PAPER_MARKER, s=220,
                               color=style.PAPER_COLOR, edgecolor="black", zorder=6, label=f"{lab} (FPGA)")
        elif finite(paper.get("lbl_bytes")) and finite(paper.get("fused_bytes")):
            save = 100 * (1 - paper["fused_bytes"] / paper["lbl_bytes"])
            # another network than the one measured: a legend entry for scale, not a point on the axes
            ax.plot([], [], ls="none", marker=style.PAPER_MARKER, color=style.PAPER_COLOR,
                    label=f"paper (FPGA, {paper.get('network', '?')}): {paper['lbl_bytes'] / MB:.0f} -> "
                          f"{paper['fused_bytes'] / MB:.1f} MB/image ({save:.0f} % less)")
    ax.set_ylabel("DRAM bytes per image (MB, log scale)")
    ax.set_yscale("log")  # fused (~0.8 MB), layer-by-layer (~9 MB) and vendor (~100 MB) all readable
    ax.set_title(f"{title}\n{suffix}", fontsize=13)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    style.save(fig, out_svg)


def tile_tradeoff_measured(tidy: pd.DataFrame, out_svg: Path, network: str, batch: int | None = None) -> None:
    """Measured: on-chip bytes (model) against DRAM bytes and time per image, one point per fused variant."""
    title = f"Tile-size trade-off (measured) - {network}"
    sel = _select(tidy, network, title, out_svg)
    if sel is None:
        return
    sub, suffix = sel
    batch = batch or int(sub["batch"].max())
    f = sub[(sub["batch"] == batch) & sub["strategy"].isin(FUSED)]
    f = f.dropna(subset=["model_onchip_bytes"])
    if f.empty:
        placeholder(out_svg, title, f"{suffix}: no fused variants measured at batch {batch}")
        return
    ref = sub[(sub["batch"] == batch) & (sub["strategy"] == Strategy.LBL)]
    fig, axes = style.figure(n_cols=2, height_in=4.6)
    pal = style.strategy_palette()
    for ax, col, scale, label in ((axes[0, 0], "dram_bytes_per_image", MB, "DRAM bytes per image (MB)"),
                                  (axes[0, 1], "us_per_image", 1.0, "time per image (us, median)")):
        for strategy, s in f.groupby("strategy"):
            s = s.sort_values("model_onchip_bytes")
            ax.plot(s["model_onchip_bytes"] / KB, s[col] / scale, marker="o", ms=8, color=pal[strategy], label=strategy)
            for _, r in s.iterrows():
                if finite(r[col]):
                    ax.annotate(f"T={r['tile']}", (r["model_onchip_bytes"] / KB, r[col] / scale), xytext=(5, 4),
                                textcoords="offset points", fontsize=9)
        if len(ref) and finite(ref[col].iloc[0]):
            ax.axhline(ref[col].iloc[0] / scale, color=pal[Strategy.LBL], ls="--", lw=1.2,
                       label="layer-by-layer")
        ax.set_xlabel("on-chip storage per block (KB, model)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    axes[0, 0].legend(loc="best", fontsize=9)
    fig.suptitle(f"{title}, batch {batch}\n{suffix}", fontsize=13)
    fig.tight_layout()
    style.save(fig, out_svg)


def speedup_vs_batch(tidy: pd.DataFrame, out_svg: Path, network: str) -> None:
    """Fused variants' speedup over lbl and over vendor against batch, band = IQR-derived spread."""
    title = f"Speedup - {network}"
    sel = _select(tidy, network, title, out_svg)
    if sel is None:
        return
    sub, suffix = sel
    fused = sub[sub["strategy"].isin(FUSED)]
    fig, axes = style.figure(n_cols=2, height_in=4.8, sharey=True)
    pal = style.variant_palette(fused)
    for ax, ref, name in ((axes[0, 0], Strategy.LBL, "over layer-by-layer"),
                          (axes[0, 1], Strategy.VENDOR, "over vendor (cuDNN)")):  # fmt: skip
        col = f"speedup_vs_{ref}"
        d = fused.dropna(subset=[col])
        if d.empty:
            ax.text(0.5, 0.5, f"no {ref} measurements", ha="center", transform=ax.transAxes,
                    color=style.PLACEHOLDER_COLOR, fontsize=12)
        for v in variant_order(d):
            s = d[d["variant"] == v].sort_values("batch")
            ax.plot(s["batch"], s[col], marker="o", color=pal[v], label=v)
            ax.fill_between(s["batch"], s[f"{col}_lo"], s[f"{col}_hi"], color=pal[v], alpha=0.2, lw=0)
        ax.axhline(1.0, color="black", lw=1.0, ls="--")
        _batch_axis(ax, sub["batch"])
        ax.set_title(name, fontsize=12)
    axes[0, 0].set_ylabel("speedup (x, median; band: IQR spread)")
    _legend_below(fig, axes[0, 0] if axes[0, 0].get_legend_handles_labels()[0] else axes[0, 1])
    fig.suptitle(f"{title}\n{suffix}", fontsize=13)
    fig.tight_layout()
    style.save(fig, out_svg)


def energy_per_image(tidy: pd.DataFrame, out_svg: Path, network: str) -> None:
    """NVML energy per image by variant against batch."""
    title = f"Energy per image - {network}"
    sel = _select(tidy, network, title, out_svg)
    if sel is None:
        return
    sub, suffix = sel
    d = sub.dropna(subset=["energy_mj_per_image"])
    if d.empty:
        placeholder(out_svg, title, f"{suffix}: no NVML energy readings")
        return
    fig, axes = style.figure(height_in=4.8)
    ax = axes[0, 0]
    order = variant_order(d)
    pal = style.variant_palette(d)
    for v in order:
        s = d[d["variant"] == v].sort_values("batch")
        ax.plot(s["batch"], s["energy_mj_per_image"], marker="o", color=pal[v], label=v)
    _batch_axis(ax, d["batch"])
    ax.set_yscale("log")
    ax.set_ylabel("energy per image (mJ, NVML)")
    ax.set_title(f"{title}\n{suffix}", fontsize=13)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    style.save(fig, out_svg)


def gpus_side_by_side(tidy: pd.DataFrame, out_svg: Path, network: str) -> None:
    """Every measured source (this run, archived runs on other cards) side by side at the largest
    batch they share: time per image and DRAM bytes per image for each variant."""
    title = f"GPUs side by side - {network}"
    m = measured(tidy, network).dropna(subset=["us_per_image"])
    if m.empty:
        placeholder(out_svg, title)
        return
    batch = int(m.groupby(["source", "gpu"])["batch"].max().min())
    d = m[m["batch"] == batch].copy()
    d["run"] = [f"{source_title(s)}: {n if isinstance(n, str) else g}"
                for s, g, n in zip(d["source"], d["gpu"], d.get("gpu_name", d["gpu"]))]
    order = variant_order(d)
    fig, axes = style.figure(n_cols=2, height_in=4.8)
    panels = ((axes[0, 0], "us_per_image", 1.0, "time per image (us, median)", False),
              (axes[0, 1], "dram_bytes_per_image", MB, "DRAM bytes per image (MB, log scale)", True))
    for ax, col, scale, label, log in panels:
        dd = d.dropna(subset=[col]).assign(value=lambda x: x[col] / scale)
        if dd.empty:
            ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes, color=style.PLACEHOLDER_COLOR)
            continue
        style.sns.barplot(data=dd, y="variant", x="value", hue="run", order=order, ax=ax, orient="h")
        ax.set_xlabel(label)
        ax.set_ylabel("")
        if log:
            ax.set_xscale("log")
        ax.get_legend().remove()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)
    fig.suptitle(f"{title}, batch {batch}", fontsize=13)
    fig.tight_layout()
    style.save(fig, out_svg)


PHASE_ORDER = ("conv1", "norm1", "pool1", "conv2", "norm2", "pool2", "shift")
PHASE_COLORS = {"conv1": "#3b6ea5", "norm1": "#8fb3d9", "pool1": "#c9dbee", "conv2": "#b8423f",
                "norm2": "#e69a98", "pool2": "#f3cfce", "shift": "#999999"}  # fmt: skip
PHASE_LABELS = {"conv1": "conv1 (+ReLU; fused: + input staging)", "norm1": "LRN1", "pool1": "pool1",
                "conv2": "conv2 (+ReLU)", "norm2": "LRN2", "pool2": "pool2 (+ store)",
                "shift": "fused: pool1 tile zero/shift (reuse)"}  # fmt: skip


def time_breakdown(phases: pd.DataFrame, out_svg: Path, network: str, tidy: pd.DataFrame | None = None,
                   batch: int = 128) -> None:  # fmt: skip
    """Stacked bars: each lbl kernel and each fused phase in us/image, at the batch closest to ``batch``."""
    title = f"Where the time goes - {network}"
    if phases is None or phases.empty or "phase" not in phases:
        placeholder(out_svg, title)
        return
    ph = phases[phases["network"] == network]
    pick = pick_source(ph)
    if pick is None:
        placeholder(out_svg, title)
        return
    ph = ph[(ph["source"] == pick[0]) & (ph["gpu"] == pick[1])]
    b = int(min(ph["batch"].unique(), key=lambda x: (abs(int(x) - batch), -int(x))))
    ph = ph[ph["batch"] == b]
    suffix = _source_suffix(tidy if tidy is not None and not tidy.empty and "gpu_name" in tidy else ph, *pick)
    variants = variant_order(ph)
    fig, axes = style.figure(height_in=1.2 + 0.62 * len(variants))
    ax = axes[0, 0]
    left = np.zeros(len(variants))
    for phase in [p for p in PHASE_ORDER if p in set(ph["phase"])] + sorted(set(ph["phase"]) - set(PHASE_ORDER)):
        vals = np.array([ph.loc[(ph["variant"] == v) & (ph["phase"] == phase), "us_per_image"].sum() for v in variants])
        ax.barh(variants, vals, left=left, color=PHASE_COLORS.get(phase, "#cccccc"), edgecolor="white", lw=0.6,
                label=PHASE_LABELS.get(phase, phase))
        for i, (x0, w) in enumerate(zip(left, vals)):
            if w >= 0.08 * max(left.max() + vals.max(), 1e-9) and phase in ("conv1", "conv2"):
                ax.text(x0 + w / 2, i, f"{w:.1f}", ha="center", va="center", fontsize=9, color="white")
        left += vals
    for i, total in enumerate(left):
        ax.text(total, i, f"  {total:.1f} us", va="center", fontsize=10)
    lbl = ph["strategy"] == Strategy.LBL
    lbl_conv = ph.loc[lbl & ph["phase"].isin(["conv1", "conv2"]), "us_per_image"].sum()
    if lbl.any() and lbl_conv > 0:
        # A fused kernel whose GEMMs ran at lbl's speed with no extra work could not beat this line.
        ax.axvline(lbl_conv, color="black", ls=":", lw=1.4,
                   label=f"lbl's conv1 + conv2 kernels alone ({lbl_conv:.1f} us)")
    ax.invert_yaxis()
    ax.set_xlim(0, left.max() * 1.15)
    ax.set_xlabel("time per image (us; shares of the timed median)")
    _legend_below(fig, ax, ncol=3, fontsize=9)
    fig.suptitle(f"{title}, batch {b}\n{suffix}", fontsize=13)
    fig.tight_layout()
    style.save(fig, out_svg)


def short_kernel_name(name: str, width: int = 28) -> str:
    """'void at::native::foo<float, 4>(int, ...)' -> 'at::native::foo', at most ``width`` characters."""
    name = str(name).removeprefix("void ").split("(")[0].split("<")[0]
    return name if len(name) <= width else name[: width - 1] + "…"


def occupancy(kernels: pd.DataFrame, out_svg: Path, network: str, batch: int | None = None) -> None:
    """Achieved (Nsight Compute) against theoretical occupancy, one point per kernel."""
    title = f"Occupancy - {network}"
    k = kernels if kernels is not None else pd.DataFrame()
    if not k.empty:
        k = k[k["network"] == network].dropna(subset=["achieved_occupancy_pct", "theoretical_occupancy_pct"])
    pick = pick_source(k) if not k.empty else None
    if pick is None:
        placeholder(out_svg, title)
        return
    k = k[(k["source"] == pick[0]) & (k["gpu"] == pick[1])]
    batch = batch or int(k["batch"].max())
    k = k[k["batch"] == batch]
    fig, axes = style.figure(height_in=5.4)
    ax = axes[0, 0]
    order = variant_order(k)
    pal = style.variant_palette(k)
    ax.plot([0, 100], [0, 100], color="black", lw=1, ls="--", label="achieved = theoretical")
    for v in order:
        s = k[k["variant"] == v]
        ax.scatter(s["theoretical_occupancy_pct"], s["achieved_occupancy_pct"], s=60, color=pal[v], label=v,
                   edgecolor="black", lw=0.4, zorder=3)
    # one label per position (kernels with equal occupancy would print over each other); the
    # vendor library's many long template names stay unlabelled, its points speak as a cloud
    ours = k[k["strategy"] != Strategy.VENDOR]
    spot = [ours["theoretical_occupancy_pct"].round(0), ours["achieved_occupancy_pct"].round(0)]
    for (x, y), names in ours.groupby(spot)["kernel"]:
        label = ", ".join(dict.fromkeys(short_kernel_name(n) for n in names))
        ax.annotate(label, (x, y), xytext=(6, -12), textcoords="offset points", fontsize=8)
    ax.set_xlim(0, 105)
    ax.set_ylim(0, 105)
    ax.set_xlabel("theoretical occupancy (% of max warps)")
    ax.set_ylabel("achieved occupancy (% of max warps)")
    ax.set_title(f"{title}, batch {batch}\n{source_title(pick[0])}: {pick[1]}", fontsize=13)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    style.save(fig, out_svg)


# Figure name (analysis/figure_list.py) -> how to draw it from the rule's input tables.
DRAW = {
    "roofline": lambda t, out, net: roofline(t["tidy"], t["kernels"], t["ceilings"], out, net),
    "bandwidth_saving": lambda t, out, net: bandwidth_saving(t["tidy"], out, net, t["ceilings"],
                                                             paper_marks(t["paper"]) or None),
    "tile_tradeoff_measured": lambda t, out, net: tile_tradeoff_measured(t["tidy"], out, net),
    "speedup": lambda t, out, net: speedup_vs_batch(t["tidy"], out, net),
    "energy": lambda t, out, net: energy_per_image(t["tidy"], out, net),
    "occupancy": lambda t, out, net: occupancy(t["kernels"], out, net),
    "gpus_side_by_side": lambda t, out, net: gpus_side_by_side(t["tidy"], out, net),
    "time_breakdown": lambda t, out, net: time_breakdown(t["phases"], out, net, t["tidy"]),
}  # fmt: skip
INPUTS = ("tidy", "kernels", "ceilings", "phases", "paper")


def draw(name: str, out: Path, network: str, tables: Mapping[str, pd.DataFrame]) -> None:
    """Draw figure ``name`` from ``tables`` (keys of INPUTS); absent tables give the placeholder."""
    if name not in DRAW:
        raise ValueError(f"unknown measured figure {name!r}; known: {', '.join(DRAW)}")
    DRAW[name]({k: tables.get(k, pd.DataFrame()) for k in INPUTS}, out, network)


if __name__ == "__main__":  # only under Snakemake's script: directive
    import logging

    from analysis.inputs import read_inputs

    sm = snakemake  # noqa: F821
    logging.basicConfig(filename=sm.log[0], level=logging.INFO)
    inputs = read_inputs(dict(sm.input.items()))
    for name in sm.output.keys():
        draw(name, Path(sm.output[name]), sm.params.network, inputs)
        logging.info("wrote %s", sm.output[name])
