"""The report's figures: each function takes DataFrames and an output path and writes one SVG.

Model figures are always drawn (the model runs on any machine). Measured figures draw what the
tidy table holds; where nothing was measured they write a clearly labelled placeholder instead of
an empty axis. A measured figure shows one source: this run's GPU when it measured anything, else
the newest archived run, and its title says which ("archived (card, date)"), so archived numbers
are never taken for the reader's own.
"""

import math
from collections.abc import Mapping
from html import escape
from pathlib import Path

import matplotlib.ticker as mticker
import numpy as np
import pandas as pd

from analysis import style
from analysis.aggregate import SOURCE_THIS_RUN, source_newest_first, source_title

KB, MB, TERA = 1e3, 1e6, 1e12
NO_GPU_TEXT = "no GPU measurements in this run"


# ---------------------------------------------------------------- helpers


def placeholder(out_svg: Path, title: str, reason: str = NO_GPU_TEXT) -> None:
    """A figure that says plainly why there is nothing to plot (never an empty axis)."""
    fig, axes = style.figure(height_in=2.6)
    ax = axes[0, 0]
    ax.set_axis_off()
    ax.text(0.5, 0.62, title, ha="center", va="center", fontsize=15, weight="bold", transform=ax.transAxes)
    ax.text(0.5, 0.32, reason, ha="center", va="center", fontsize=14, color=style.PLACEHOLDER_COLOR,
            style="italic", transform=ax.transAxes, wrap=True)
    ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
        (0.02, 0.05), 0.96, 0.9, transform=ax.transAxes, fill=False, ls="--", color=style.PLACEHOLDER_COLOR))
    style.save(fig, out_svg)


def measured(tidy: pd.DataFrame, network: str | None = None) -> pd.DataFrame:
    """Rows with a GPU measurement that passed (or did not record) verification."""
    if tidy is None or tidy.empty:
        return pd.DataFrame(columns=getattr(tidy, "columns", []))
    df = tidy[~tidy["model_only"].astype(bool)]
    if "verify_passed" in df.columns:
        ok = df["verify_passed"].map(lambda x: x is not False and x != "False").astype(bool)
        df = df.loc[ok]
    if network is not None:
        df = df.loc[df["network"] == network]
    return df


def pick_source(df: pd.DataFrame) -> tuple[str, str] | None:
    """(source, gpu) to show: this run if it measured anything, else the newest archive."""
    if df.empty:
        return None
    pairs = df[["source", "gpu"]].drop_duplicates().itertuples(index=False, name=None)
    pairs = sorted(pairs, key=lambda p: (source_newest_first(p[0]), p[1]))
    return pairs[0]


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


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _legend_below(fig, ax, ncol: int = 4, **kw) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, frameon=False, **kw)


# ---------------------------------------------------------------- model figures


def dse_pareto(dse: pd.DataFrame, out_svg: Path, network: str,
               paper_point: tuple[float, float] | None = None) -> None:
    """Every partition of the network into fused groups: on-chip KB vs off-chip MB per image."""
    title = f"Design space of fused groups - {network}"
    d = dse.dropna(subset=["onchip_bytes", "dram_bytes_per_image"]) if not dse.empty else dse
    if d.empty:
        placeholder(out_svg, title, "no design-space results from the model")
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
    if paper_point and all(_finite(v) for v in paper_point):
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
        placeholder(out_svg, title, "no pyramid results from the model")
        return
    p = p.assign(tile=p["tile"].astype(float))
    fig, axes = style.figure(n_cols=3, height_in=4.2)
    pal = style.strategy_palette()
    groups = [g for g in p["group"].dropna().unique()] or [""]
    styles = ["-", ":", "-.", (0, (5, 1))]
    panels = [("onchip_bytes", KB, "on-chip storage (KB)"),
              ("dram_bytes_per_image_fused", MB, "DRAM traffic (MB per image)"),
              ("extra_macs_per_image", MB, "extra MACs (millions per image)")]
    for ax, (col, scale, label) in zip(axes[0], panels):
        for gi, g in enumerate(groups):
            sub = p[p["group"] == g] if g != "" else p
            axes_col = sub["reuse_axes"].fillna("") if "reuse_axes" in sub else pd.Series("", index=sub.index)
            for (strategy, axes_used), s in sub.groupby([sub["strategy"], axes_col]):
                s = s.sort_values("tile")
                name = strategy + (f" in {axes_used}" if axes_used else "") + (f" ({g})" if len(groups) > 1 else "")
                ls = ":" if strategy == "reuse" and axes_used == "y" else styles[gi % len(styles)]
                ax.plot(s["tile"], s[col] / scale, marker="o", ms=5, color=pal.get(strategy, "#7f7f7f"),
                        ls=ls, label=name)
        if col == "dram_bytes_per_image_fused" and p["dram_bytes_per_image_lbl"].notna().any():
            ax.axhline(p["dram_bytes_per_image_lbl"].max() / MB, color=style._FAMILY_COLORS["lbl"], ls="--", lw=1.2,
                       label="layer-by-layer")
        ax.set_xlabel("tile side T (output pixels)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    axes[0, 1].legend(loc="best", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    style.save(fig, out_svg)


# ---------------------------------------------------------------- measured figures


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
              & (k["variant"] == "lbl")].dropna(subset=["achieved_flops_per_s"])
    fig, axes = style.figure(n_cols=2, height_in=5.4, sharey=True)
    levels = [("dram", "o", "DRAM"), ("l2", "s", "L2"), ("l1", "^", "L1")]
    pal = style.variant_palette(sub["variant"].unique())
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
            ok = [(x, y) for x, y in pts if _finite(x) and x > 0 and _finite(y) and y > 0]
            if not ok:
                continue
            ax.plot([x for x, _ in ok], [y / TERA for _, y in ok], color=color, lw=0.8, alpha=0.6)
            for (lvl, marker, _), (x, y) in zip(levels, pts):
                if _finite(x) and x > 0 and _finite(y) and y > 0:
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
    peak = ceil.get("fp32_flops_per_s", math.nan)
    for ax in axes[0]:
        for key, name, ls in (("dram_bytes_per_s", "DRAM", "-"), ("l2_bytes_per_s", "L2", "--"),
                              ("l1_bytes_per_s", "L1", ":")):
            bw = ceil.get(key, math.nan)
            if _finite(bw):
                roof = np.minimum(bw * xs, peak) if _finite(peak) else bw * xs
                ax.plot(xs, roof / TERA, color="black", ls=ls, lw=1.1, label=f"{name} {bw / TERA:.1f} TB/s (measured)")
        if _finite(peak):
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
    if not _finite(peak) and not ceil.get("has_ceilings", False):
        labels_note = " (no measured ceilings)"
    else:
        labels_note = ""
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False)
    fig.suptitle(f"{title}, batch {batch}{labels_note}\n{suffix}", fontsize=13)
    fig.tight_layout()
    style.save(fig, out_svg)


def bandwidth_saving(tidy: pd.DataFrame, out_svg: Path, network: str, ceilings: pd.DataFrame | None = None,
                     largest_intermediate_bytes_per_image: float | None = None,
                     paper: Mapping[str, float] | None = None) -> None:
    """DRAM bytes per image by variant vs batch; model dashed; L2 crossover and paper figure marked.

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
    order = style.variant_order(sub["variant"])
    pal = style.variant_palette(order)
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
    if ceilings is not None and not ceilings.empty and "l2_cache_bytes" in ceilings:
        c = ceilings[(ceilings["source"] == sub["source"].iloc[0]) & (ceilings["gpu"] == sub["gpu"].iloc[0])]
        l2 = float(c["l2_cache_bytes"].iloc[0]) if len(c) else math.nan
    if _finite(l2) and largest_intermediate_bytes_per_image and largest_intermediate_bytes_per_image > 0:
        cross = l2 / largest_intermediate_bytes_per_image
        ax.axvline(cross, color="#2ca02c", ls="-.", lw=1.3)
        ax.annotate(f"L2 ({l2 / 2**20:.0f} MiB) holds the largest\nintermediate map up to batch {cross:.0f}",
                    (cross, 0.97), xycoords=("data", "axes fraction"), xytext=(-4, 0), textcoords="offset points",
                    va="top", ha="right", fontsize=9, color="#2ca02c")
    if paper:
        if paper.get("network") == network:
            for key, lab in (("lbl_bytes", "paper layer-by-layer"), ("fused_bytes", "paper fused")):
                if _finite(paper.get(key)):
                    ax.scatter([max(batches)], [paper[key] / MB], marker=style.PAPER_MARKER, s=220,
                               color=style.PAPER_COLOR, edgecolor="black", zorder=6, label=f"{lab} (FPGA)")
        elif _finite(paper.get("lbl_bytes")) and _finite(paper.get("fused_bytes")):
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
    f = sub[(sub["batch"] == batch) & sub["strategy"].isin(["reuse", "recompute"])]
    f = f.dropna(subset=["model_onchip_bytes"])
    if f.empty:
        placeholder(out_svg, title, f"{suffix}: no fused variants measured at batch {batch}")
        return
    ref = sub[(sub["batch"] == batch) & (sub["variant"] == "lbl")]
    fig, axes = style.figure(n_cols=2, height_in=4.6)
    pal = style.strategy_palette()
    for ax, col, scale, label in ((axes[0, 0], "dram_bytes_per_image", MB, "DRAM bytes per image (MB)"),
                                  (axes[0, 1], "us_per_image", 1.0, "time per image (us, median)")):
        for strategy, s in f.groupby("strategy"):
            s = s.sort_values("model_onchip_bytes")
            ax.plot(s["model_onchip_bytes"] / KB, s[col] / scale, marker="o", ms=8, color=pal[strategy], label=strategy)
            for _, r in s.iterrows():
                if _finite(r[col]):
                    ax.annotate(f"T={r['tile']}", (r["model_onchip_bytes"] / KB, r[col] / scale), xytext=(5, 4),
                                textcoords="offset points", fontsize=9)
        if len(ref) and _finite(ref[col].iloc[0]):
            ax.axhline(ref[col].iloc[0] / scale, color=style._FAMILY_COLORS["lbl"], ls="--", lw=1.2,
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
    fused = sub[sub["strategy"].isin(["reuse", "recompute"])]
    fig, axes = style.figure(n_cols=2, height_in=4.8, sharey=True)
    pal = style.variant_palette(fused["variant"].unique())
    for ax, ref, name in ((axes[0, 0], "lbl", "over layer-by-layer"), (axes[0, 1], "vendor", "over vendor (cuDNN)")):
        col = f"speedup_vs_{ref}"
        d = fused.dropna(subset=[col])
        if d.empty:
            ax.text(0.5, 0.5, f"no {ref} measurements", ha="center", transform=ax.transAxes,
                    color=style.PLACEHOLDER_COLOR, fontsize=12)
        for v in style.variant_order(d["variant"]):
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
    order = style.variant_order(d["variant"])
    pal = style.variant_palette(order)
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
    order = style.variant_order(d["variant"].unique())
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
    variants = style.variant_order(ph["variant"])
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
    lbl_conv = ph.loc[(ph["variant"] == "lbl") & ph["phase"].isin(["conv1", "conv2"]), "us_per_image"].sum()
    if "lbl" in variants and lbl_conv > 0:
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
    order = style.variant_order(k["variant"])
    pal = style.variant_palette(order)
    ax.plot([0, 100], [0, 100], color="black", lw=1, ls="--", label="achieved = theoretical")
    for v in order:
        s = k[k["variant"] == v]
        ax.scatter(s["theoretical_occupancy_pct"], s["achieved_occupancy_pct"], s=60, color=pal[v], label=v,
                   edgecolor="black", lw=0.4, zorder=3)
    # one label per position (kernels with equal occupancy would print over each other); the
    # vendor library's many long template names stay unlabelled, its points speak as a cloud
    ours = k[k["variant"] != "vendor"]
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


# ---------------------------------------------------------------- tables


def write_report_table(df: pd.DataFrame, path: Path, title: str = "", note: str = "") -> None:
    """A self-contained HTML table for the Snakemake report (sortable by clicking a header).

    Snakemake 9's report shows HTML results in an iframe but offers CSV/TSV only as downloads, so
    tables go in as HTML. No external scripts or styles: the report must work offline.
    """
    def cell(x) -> str:
        if isinstance(x, float):
            if math.isnan(x):
                return '<td class="na">-</td>'
            txt = f"{x:.4g}" if abs(x) < 1e5 else f"{x:.4e}"
            return f'<td class="num" data-v="{x!r}">{txt}</td>'
        if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
            return f'<td class="num" data-v="{int(x)}">{int(x)}</td>'
        return f"<td>{escape(str(x))}</td>"

    head = "".join(f"<th onclick=\"sortBy({i})\">{escape(str(c))}</th>" for i, c in enumerate(df.columns))
    body = "\n".join("<tr>" + "".join(cell(x) for x in row) + "</tr>" for row in df.itertuples(index=False))
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title or 'table')}</title>
<style>
body {{ font-family: system-ui, sans-serif; font-size: 13px; margin: 8px; }}
h1 {{ font-size: 16px; }} p.note {{ color: #555; }}
table {{ border-collapse: collapse; }}
th {{ position: sticky; top: 0; background: #eef2f7; cursor: pointer; text-align: left; padding: 3px 6px;
      border-bottom: 2px solid #999; white-space: nowrap; }}
td {{ padding: 2px 6px; border-bottom: 1px solid #ddd; white-space: nowrap; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }} td.na {{ color: #aaa; text-align: center; }}
tr:hover td {{ background: #f6f8fb; }}
</style></head><body>
{f'<h1>{escape(title)}</h1>' if title else ''}{f'<p class="note">{escape(note)}</p>' if note else ''}
<table id="t"><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
<script>
function sortBy(i) {{
  const tb = document.querySelector("#t tbody"), rows = Array.from(tb.rows);
  const key = r => {{ const c = r.cells[i]; return c.dataset.v !== undefined ? parseFloat(c.dataset.v) : c.textContent; }};
  const dir = tb.dataset.col == i && tb.dataset.dir == "1" ? -1 : 1;
  rows.sort((a, b) => {{ const x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * dir; }});
  tb.dataset.col = i; tb.dataset.dir = dir; rows.forEach(r => tb.appendChild(r));
}}
</script>
</body></html>
"""
    Path(path).write_text(html)


# Columns of the tidy table shown in the report (all columns stay in results/tidy.csv).
REPORT_TABLE_COLUMNS = [
    "source", "gpu", "network", "variant", "batch", "model_only", "verify_passed", "us_per_image",
    "us_per_image_q1", "us_per_image_q3", "speedup_vs_lbl", "speedup_vs_vendor", "dram_bytes_per_image",
    "model_dram_bytes_per_image", "dram_ratio_to_model", "dram_ratio_to_compulsory", "l2_bytes_per_image",
    "achieved_flops_per_s", "ai_dram_flops_per_byte", "energy_mj_per_image", "registers_max", "shared_bytes_max",
    "spill_bytes_total", "achieved_occupancy_pct", "throttled", "missing",
]


def tidy_for_report(tidy: pd.DataFrame) -> pd.DataFrame:
    """The report's view of the tidy table: the columns a reader compares, in a fixed order."""
    return tidy[[c for c in REPORT_TABLE_COLUMNS if c in tidy.columns]]


def paper_summary(paper: pd.DataFrame) -> pd.DataFrame:
    """One row per paper figure: the paper's value, the model with its own (default) conventions,
    and the closest honest alternative convention (all conventions: results/model/paper_comparison.csv)."""
    if paper.empty:
        return pd.DataFrame(columns=["figure", "quantity", "unit", "paper_value"])
    rows = []
    for fig, g in paper.groupby("figure", sort=False):
        default = g[g["default"].astype(str) == "True"]
        best = g[g["best"].astype(str) == "True"].iloc[0]
        d = default.iloc[0] if len(default) else None
        rows.append({
            "figure": fig, "quantity": best["quantity"], "unit": best["unit"], "paper_value": best["paper_value"],
            "model_default_conventions": d["model_value"] if d is not None else math.nan,
            "ratio_default": d["ratio_model_to_paper"] if d is not None else math.nan,
            "model_closest": best["model_value"], "ratio_closest": best["ratio_model_to_paper"],
            "closest_convention": best["convention"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def extra_work_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Measured arithmetic of each variant beside the model and beside the fused kernel's own count.

    Measured MACs are Nsight Compute's FP32 FLOPs / 2 (FMA = 2, FADD/FMUL = 1, so LRN arithmetic is
    included and max/ReLU are not); ``executed_over_model`` above 1 is work beyond the model's
    pyramid. For fused variants, ``kernels.work.fused_work`` walks the kernel's loops: its exact
    work equals the model's useful + extra MACs, ``kernel_padding_macs_per_image`` is what empty
    register-tile slots and padded K add, and ``kernel_counted_flops_per_image`` (GEMMs, bias, LRN)
    is what ncu should count: ``measured_over_counted`` is that check.
    """
    from kernels.work import fused_work
    from pipeline.core.networks import load_network
    from pipeline.core.tiles import parse_tile

    m = measured(tidy)
    cols = ["source", "gpu", "variant", "batch", "model_useful_macs_per_image", "model_extra_macs_per_image",
            "kernel_padding_macs_per_image", "measured_macs_per_image", "executed_over_model",
            "kernel_counted_flops_per_image", "flops_per_image", "measured_over_counted"]
    if m.empty or "flops_per_image" not in m:
        return pd.DataFrame(columns=cols)
    m = m[m["strategy"].isin(["lbl", "reuse", "recompute"])].dropna(subset=["flops_per_image"])
    m = m.assign(measured_macs_per_image=m["flops_per_image"] / 2)
    model = m["model_useful_macs_per_image"] + m["model_extra_macs_per_image"].fillna(0)
    m = m.assign(executed_over_model=m["measured_macs_per_image"] / model)
    pad, counted = [], []
    for _, r in m.iterrows():
        if r["strategy"] in ("reuse", "recompute") and isinstance(r.get("tile"), str):
            shape = load_network(r["network"]).input
            exact = r.get("build_exact_slots")  # NaN (no build report): the current build
            w = fused_work(parse_tile(r["tile"]), r["strategy"], shape.height, shape.width,
                           exact_slots=not (_finite(exact) and exact == 0))  # fmt: skip
            pad.append(float(w.padding_macs))
            counted.append(float(w.flops))
        else:
            pad.append(math.nan)
            counted.append(math.nan)
    m = m.assign(kernel_padding_macs_per_image=pad, kernel_counted_flops_per_image=counted)
    m = m.assign(measured_over_counted=m["flops_per_image"] / m["kernel_counted_flops_per_image"])
    return m.reindex(columns=cols)


FIGURES = {
    "dse_pareto": dse_pareto,
    "tile_tradeoff_model": tile_tradeoff_model,
    "roofline": roofline,
    "bandwidth_saving": bandwidth_saving,
    "tile_tradeoff_measured": tile_tradeoff_measured,
    "speedup": speedup_vs_batch,
    "energy": energy_per_image,
    "occupancy": occupancy,
    "gpus_side_by_side": gpus_side_by_side,
    "time_breakdown": time_breakdown,
}


def paper_marks(paper: pd.DataFrame) -> dict:
    """The paper's VGG-E traffic figures (bytes per image) and design point from paper_comparison.csv."""
    from analysis.aggregate import paper_value

    scale = {"mb": MB, "kb": KB, "b": 1.0, "bytes": 1.0, "mib": 2**20, "kib": 2**10}

    def in_bytes(figure_id: str) -> float:
        v = paper_value(paper, figure_id)
        if not _finite(v):
            return math.nan
        unit = str(paper.loc[paper["figure"] == figure_id, "unit"].iloc[0]).strip().lower()
        return v * scale.get(unit, 1.0)

    return {
        "network": "vgg_e",
        "lbl_bytes": in_bytes("vgg_lbl_dram"),
        "fused_bytes": in_bytes("vgg_fused_dram"),
        "onchip_bytes": in_bytes("vgg_onchip"),
    }


def draw(name: str, out: Path, network: str, tables: Mapping[str, pd.DataFrame],
         groups: Mapping[str, tuple[str, str]] | None = None, bytes_per_value: int = 4) -> None:
    """Draw figure ``name`` (a key of FIGURES) from the tables it needs: one entry point for the rules.

    ``tables`` may hold ``tidy``, ``kernels``, ``ceilings``, ``dse``, ``pyramids``, ``paper``; absent
    ones are empty, which gives the figure's placeholder.
    """
    from analysis.aggregate import block_bytes

    t = {k: tables.get(k, pd.DataFrame()) for k in ("tidy", "kernels", "ceilings", "dse", "pyramids", "paper", "phases")}
    marks = paper_marks(t["paper"]) if not t["paper"].empty else {}
    if name == "dse_pareto":
        point = (marks.get("onchip_bytes"), marks.get("fused_bytes")) if marks.get("network") == network else None
        dse_pareto(t["dse"], out, network, point)
    elif name == "tile_tradeoff_model":
        tile_tradeoff_model(t["pyramids"], out, network)
    elif name == "roofline":
        roofline(t["tidy"], t["kernels"], t["ceilings"], out, network)
    elif name == "bandwidth_saving":
        g = (groups or {}).get(network)
        inter = block_bytes(network, *g, bytes_per_value)["largest_intermediate_bytes_per_image"] if g else None
        bandwidth_saving(t["tidy"], out, network, t["ceilings"], inter, marks or None)
    elif name == "occupancy":
        occupancy(t["kernels"], out, network)
    elif name == "time_breakdown":
        time_breakdown(t["phases"], out, network, t["tidy"])
    elif name in FIGURES:
        FIGURES[name](t["tidy"], out, network)
    else:
        raise ValueError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")


if __name__ == "__main__":  # only under Snakemake's script: directive
    import logging

    from analysis.aggregate import groups_from_config, read_dse, read_paper_comparison, read_pyramids

    sm = snakemake  # noqa: F821
    logging.basicConfig(filename=sm.log[0], level=logging.INFO)
    readers = {"tidy": pd.read_csv, "kernels": pd.read_csv, "ceilings": pd.read_csv, "dse": read_dse,
               "pyramids": read_pyramids, "paper": read_paper_comparison, "phases": pd.read_csv}
    loaded = {k: readers[k](Path(sm.input[k])) for k in readers if k in sm.input.keys()}
    network = sm.wildcards.get("network", sm.params.get("network", ""))
    bpv = int(sm.config.get("model", {}).get("bytes_per_value", 4))
    for key in sm.output.keys():
        if key in FIGURES:
            draw(key, Path(sm.output[key]), network, loaded, groups_from_config(sm.config), bpv)
        elif key == "tidy_table":
            write_report_table(tidy_for_report(loaded["tidy"]), Path(sm.output[key]), "Tidy results table",
                               "one row per source x gpu x network x variant x batch; full table in results/tidy.csv")
        elif key == "paper_table":
            write_report_table(paper_summary(loaded["paper"]), Path(sm.output[key]),
                               "Paper (FPGA) vs analytical model",
                               "Alwani, Chen, Ferdman, Milder: Fused-Layer CNN Accelerators, MICRO 2016. "
                               "Every convention tried: results/model/paper_comparison.csv.")
        elif key == "provenance_table":
            from analysis.aggregate import collect_provenance

            results = [Path(p) for p in sm.params.get("results_dirs", ["results"])]
            archives = [Path(p) for p in sm.params.get("archive_dirs", [])]
            write_report_table(collect_provenance(results, archives), Path(sm.output[key]),
                               "Provenance and measurement settings", "one row per source x GPU")
        elif key == "extra_work_table":
            write_report_table(extra_work_table(loaded["tidy"]), Path(sm.output[key]),
                               "Arithmetic executed by each kernel vs the model (ncu FLOPs / 2)")
        logging.info("wrote %s", sm.output[key])
