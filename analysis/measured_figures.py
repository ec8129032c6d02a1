"""Rule measured_figures: what the GPU measured, one SVG per figure, for the kernels' network.

Each figure draws what the tidy tables hold; where nothing was measured it writes a clearly
labelled placeholder instead of an empty axis. A figure shows one source: this run's GPU when it
measured anything, else the newest archived run, and its title says which ("archived (card,
date)"), so archived numbers are never taken for the reader's own. Names and captions:
analysis/figure_list.py.
"""

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.ticker as mticker
import numpy as np
import pandas as pd

from analysis import style
from analysis.collect import KEYS
from analysis.derive import finite
from analysis.labels import Label, along, place_labels
from analysis.paper import KB, MB, paper_marks
from analysis.rows import measured, network_order, network_variant_order, pick_source, variant_order
from analysis.sources import SOURCE_THIS_RUN, source_title
from pipeline.stages.ceilings import COMPUTE_CEILING_KEYS
from pipeline.core.precision import BYTES_PER_VALUE, PRECISIONS
from pipeline.core.strategy import FUSED_STRATEGIES, Strategy
from pipeline.model.paper import PAPER_READING

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
    """Whether this run measured anything (its model-only rows do not count)."""
    rows = df[df["source"] == SOURCE_THIS_RUN]
    if "model_only" in rows.columns:
        rows = rows[~rows["model_only"].astype(bool)]
    return not rows.empty


def _select(tidy: pd.DataFrame, network: str, title: str, out_svg: Path) -> tuple[pd.DataFrame, str] | None:
    """Measured rows of one source for a figure, or None after drawing the placeholder."""
    m = measured(tidy, network)
    pick = pick_source(m)
    if pick is None:
        placeholder(out_svg, title)
        return None
    sub = m[(m["source"] == pick[0]) & (m["gpu"] == pick[1])]
    return sub, _source_suffix(m, *pick)


# Line style of each network in a figure that shows several (the kernels' network solid).
NETWORK_LINESTYLES = ("-", (0, (5, 2)), ":", "-.")


def network_styles(networks: Sequence[str]) -> dict[str, object]:
    """One line style per network, in the order given (the figure's own network first: solid)."""
    return {n: NETWORK_LINESTYLES[i % len(NETWORK_LINESTYLES)] for i, n in enumerate(networks)}


def network_handles(styles: Mapping[str, object]) -> list:
    """Legend entries naming each network's line style; none when the figure shows one network."""
    if len(styles) < 2:
        return []
    return [style.plt.Line2D([], [], color="#4d4d4d", ls=ls, lw=1.6, label=f"{n} (line style)")
            for n, ls in styles.items()]


def at_largest_batch(rows: pd.DataFrame, batch: int | None = None) -> pd.DataFrame:
    """Rows at ``batch``, or each network's own largest batch (AlexNet and VGG-E are measured up to
    different batches)."""
    if batch:
        return rows[rows["batch"] == batch]
    return rows[rows["batch"] == rows.groupby("network")["batch"].transform("max")]


def batch_text(rows: pd.DataFrame) -> str:
    """'batch 128', or 'batch 128 (alexnet), 64 (vgg_e)' when the networks' batches differ."""
    per = rows.groupby("network")["batch"].max()
    per = per.reindex(network_order(rows, per.index[0] if len(per) else None))
    if per.nunique() <= 1:
        return f"batch {int(per.iloc[0])}" if len(per) else "batch ?"
    return "batch " + ", ".join(f"{int(b)} ({n})" for n, b in per.items())


def _batch_axis(ax, batches) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(mticker.FixedLocator(sorted(set(batches))))
    ax.xaxis.set_major_formatter(mticker.FormatStrFormatter("%d"))
    ax.xaxis.set_minor_locator(mticker.NullLocator())
    ax.set_xlabel("batch size (images)")


def log_ticks(ax) -> None:
    """Plain-number ticks on a log y axis (0.5, 1, 2, ...), 1-2-5 steps when it spans two decades
    or less, else one per decade; no labelled minor ticks crowding a short axis."""
    lo, hi = ax.get_ylim()
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1
    ax.yaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1, 2, 5) if decades <= 2 else (1,)))
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(mticker.NullFormatter())


def _legend_below(fig, ax, ncol: int = 4, **kw) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, frameon=False, **kw)


def kernel_labels(k: pd.DataFrame) -> pd.Series:
    """Kernel names made unique within one pass: a kernel launched twice in a pass (lbl's LRN after
    conv1 and after conv2) becomes ``lbl_lrn #1`` and ``lbl_lrn #2``, in launch order."""
    if k is None or k.empty:
        return pd.Series(dtype=str)
    keys = [c for c in (*KEYS, "kernel") if c in k.columns]
    nth = k.groupby(keys, sort=False).cumcount() + 1
    count = k.groupby(keys, sort=False)["kernel"].transform("size")
    names = k["kernel"].map(short_kernel_name)
    return names.where(count == 1, names + " #" + nth.astype(str))


def _legend_under(fig, anchor, handles: list, **kw):
    """A figure legend centred under ``anchor`` (another legend); returns it, to anchor what follows."""
    return fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, style.y_below(fig, anchor)),
                      frameon=False, **kw)


def _note_below(fig, anchor, lines: list[str], fontsize: float = 9) -> None:
    """Text lines centred under ``anchor`` (a legend), so notes never sit on the axes; a line longer
    than 150 characters is wrapped (a list of variants would otherwise run off the figure)."""
    if not lines:
        return
    import textwrap

    lines = [w for line in lines for part in line.split("\n") for w in (textwrap.wrap(part, 150) or [""])]
    fig.text(0.5, style.y_below(fig, anchor), "\n".join(lines), ha="center", va="top", fontsize=fontsize,
             color="#444444")


# The compute roof of each precision, as the ceilings table names it (pipeline/stages/ceilings.py),
# with its legend name and line style; a variant is drawn against the roof of its own precision.
COMPUTE_ROOF_NAMES = {"fp32": "FP32 peak (FFMA)", "tf32": "TF32 peak (tensor cores, mma.sync)",
                      "fp16": "FP16 peak (tensor cores, mma.sync)", "bf16": "BF16 peak (tensor cores, mma.sync)"}  # fmt: skip
COMPUTE_ROOF_STYLES = {"fp32": ("#b22222", "-"), "tf32": ("#b35806", ":"), "fp16": ("#1b7837", "-."),
                       "bf16": ("#762a83", (0, (6, 2, 1, 2)))}  # fmt: skip


def compute_roofs(ceil: pd.Series, precisions) -> tuple[list[tuple[str, float]], list[str]]:
    """The measured compute ceiling of each of ``precisions`` that has one, as (precision, FLOP/s)
    in PRECISIONS order, and the precisions without one (runs archived before it was measured)."""
    roofs, missing = [], []
    for p in (p for p in PRECISIONS if p in set(precisions)):
        value = ceil.get(COMPUTE_CEILING_KEYS[p], math.nan)
        if finite(value) and value > 0:
            roofs.append((p, float(value)))
        else:
            missing.append(p)
    return roofs, missing


def _roofline_kernels(kernels: pd.DataFrame | None, source: str, gpu: str, network: str, batch: int
                      ) -> tuple[pd.DataFrame, list[str], list[str]]:  # fmt: skip
    """The fp32 lbl kernels of one pass with FP32 FLOPs, the 0-FLOP ones' labels, and the 16-bit lbl
    kernels left out (ncu's FP32 FLOP counters do not see their tensor-core work)."""
    k = kernels if kernels is not None else pd.DataFrame()
    if k.empty:
        return k, [], []
    k = k[(k["source"] == source) & (k["gpu"] == gpu) & (k["network"] == network) & (k["batch"] == batch)
          & (k["strategy"] == Strategy.LBL)]
    fp32 = k["precision"].fillna(PRECISIONS[0]) == PRECISIONS[0]
    left_out = sorted(set(k.loc[~fp32, "variant"]))
    k = k[fp32]
    k = k.assign(label=kernel_labels(k))
    dead = ~(k["achieved_flops_per_s"].fillna(0) > 0)
    return k[~dead], list(k.loc[dead, "label"]), left_out


def _draw_roofs(ax, xs: np.ndarray, roofs: list[tuple[str, float]], bandwidths: list[tuple[str, str, str]],
                ceil: pd.Series, capped: bool = True) -> None:  # fmt: skip
    """Bandwidth roofs, capped at the highest compute roof (uncapped when ``capped`` is false: a
    precision on these axes has no measured roof, and its points may sit above the others'), and a
    line per compute roof."""
    top = max((v for _, v in roofs), default=math.nan) if capped else math.nan
    for key, name, ls in bandwidths:
        bw = ceil.get(key, math.nan)
        if finite(bw):
            roof = np.minimum(bw * xs, top) if finite(top) else bw * xs
            ax.plot(xs, roof / TERA, color="black", ls=ls, lw=1.1, label=f"{name} {bw / TERA:.1f} TB/s (measured)")
    for p, value in roofs:
        color, ls = COMPUTE_ROOF_STYLES[p]
        ax.axhline(value / TERA, color=color, ls=ls, lw=1.3,
                   label=f"{COMPUTE_ROOF_NAMES[p]} {value / TERA:.0f} TFLOP/s (measured)")


def roofline(tidy: pd.DataFrame, kernels: pd.DataFrame, ceilings: pd.DataFrame, out_svg: Path, network: str,
             batch: int | None = None) -> None:
    """Hierarchical roofline: each variant (whole pass) and each fp32 lbl kernel at DRAM and L2
    intensity (and L1 where an L1 ceiling was measured), lbl kernels labelled without overlaps. Each
    precision's points sit under that precision's measured compute roof (FP32 FMA, tensor cores)."""
    title = f"Hierarchical roofline - {network}"
    sel = _select(tidy, None, title, out_svg)  # every network the source measured
    if sel is None:
        return
    sub, suffix = sel
    networks = network_order(sub, network)
    title = f"Hierarchical roofline - {', '.join(networks)}"
    source, gpu = sub["source"].iloc[0], sub["gpu"].iloc[0]
    # a point needs bytes, which only a profile has (16-bit variants' FLOPs come from the model)
    sub = sub.dropna(subset=["achieved_flops_per_s"]).dropna(
        subset=["ai_dram_flops_per_byte", "ai_l2_flops_per_byte"], how="all")
    if sub.empty:
        placeholder(out_svg, title, f"{suffix}: no FLOP or byte counts (Nsight Compute did not run)")
        return
    sub = at_largest_batch(sub, batch)
    batches = batch_text(sub)
    batch = batch or int(sub.loc[sub["network"] == network, "batch"].max() if (sub["network"] == network).any()
                         else sub["batch"].max())  # the lbl kernels' panel: the figure's own network
    net_ls = network_styles(network_order(sub, network))
    ceil = ceilings[(ceilings["source"] == source) & (ceilings["gpu"] == gpu)] if not ceilings.empty else ceilings
    ceil = ceil.iloc[0] if len(ceil) else pd.Series(dtype=float)
    k, zero_flop, lbl_16bit = _roofline_kernels(kernels, source, gpu, network, batch)
    levels = [("dram", "o", "DRAM"), ("l2", "s", "L2")]
    has_l1 = finite(ceil.get("l1_bytes_per_s", math.nan))
    if has_l1:
        levels.append(("l1", "^", "L1"))
    fig, axes = style.figure(n_cols=2, height_in=5.4, sharey=True)
    pal = style.variant_palette(sub)
    xs_all: list[float] = []
    ys_all: list[float] = []
    to_label: list[Label] = []
    points: list[tuple[float, float]] = []
    for ax, frame, label_col, what in ((axes[0, 0], sub, "variant", "whole forward pass per variant"),
                                       (axes[0, 1], k, "label", "layer-by-layer kernels (FP32)")):
        if frame is None or frame.empty:
            ax.text(0.5, 0.5, "no per-kernel profile", ha="center", transform=ax.transAxes,
                    color=style.PLACEHOLDER_COLOR)
            ax.set_title(what, fontsize=12)
            continue
        for i, (_, r) in enumerate(frame.iterrows()):
            color = pal.get(r["variant"], "#4d4d4d") if label_col == "variant" else style.sns.color_palette("tab10")[i % 10]
            pts = [(r[f"ai_{lvl}_flops_per_byte"], r["achieved_flops_per_s"]) for lvl, _, _ in levels]
            ok = [(x, y / TERA) for x, y in pts if finite(x) and x > 0 and finite(y) and y > 0]
            if not ok:
                continue
            ls = net_ls.get(r.get("network"), "-") if label_col == "variant" else "-"
            ax.plot([x for x, _ in ok], [y for _, y in ok], color=color, lw=0.8 if ls == "-" else 1.3, alpha=0.6, ls=ls)
            for (lvl, marker, _), (x, y) in zip(levels, pts):
                if finite(x) and x > 0 and finite(y) and y > 0:
                    ax.scatter(x, y / TERA, marker=marker, s=45, color=color, edgecolor="black", lw=0.4, zorder=4)
                    xs_all.append(x)
                    ys_all.append(y / TERA)
                    if label_col == "label":
                        points.append((x, y / TERA))
            if label_col == "variant":  # variants sit close together: name them in a legend
                ax.plot([], [], color=color, marker="o", ls="", label=r["variant"])
            else:
                to_label.append(Label(str(r[label_col]), ok[0], matplotlib_color(color)))
        ax.set_title(what if label_col == "variant" or len(net_ls) < 2 else f"{what} ({network})", fontsize=12)
    if not xs_all:
        placeholder(out_svg, title, f"{suffix}: no positive intensities to plot")
        return
    x_lo, x_hi = min(xs_all) / 4, max(xs_all) * 4
    xs = np.logspace(math.log10(x_lo), math.log10(x_hi), 100)
    roofs, no_roof = compute_roofs(ceil, sub["precision"].fillna(PRECISIONS[0]))
    bandwidths = [("dram_bytes_per_s", "DRAM", "-"), ("l2_bytes_per_s", "L2", "--")]
    if has_l1:
        bandwidths.append(("l1_bytes_per_s", "L1", ":"))
    for ax, ax_roofs, capped in ((axes[0, 0], roofs, not no_roof),
                                 (axes[0, 1], [r for r in roofs if r[0] == PRECISIONS[0]], True)):
        _draw_roofs(ax, xs, ax_roofs, bandwidths, ceil, capped)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(x_lo, x_hi)
        ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    y_lo, y_hi = min(ys_all), max(ys_all + [v / TERA for _, v in roofs])
    axes[0, 0].set_ylim(y_lo / 3, y_hi * 2.5)  # room above the highest roof for labels
    axes[0, 0].set_ylabel("achieved TFLOP/s")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    variant_handles = [h for h, lab in zip(handles, labels) if lab in set(sub["variant"])]
    handles = [h for h, lab in zip(handles, labels) if lab not in set(sub["variant"])]
    for _, marker, name in levels:
        handles.append(style.plt.Line2D([], [], marker=marker, ls="", color="#4d4d4d", label=f"{name} intensity"))
    handles += network_handles(net_ls)
    labels_note = " (no measured ceilings)" if not roofs and not ceil.get("has_ceilings", False) else ""
    fig.suptitle(f"{title}, {batches}{labels_note}\n{suffix}", fontsize=13)
    fig.tight_layout()
    legend = fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False)
    if variant_handles:  # below the axes: the tensor-core roofs squeeze the points into any corner a legend takes
        legend = _legend_under(fig, legend, variant_handles, ncol=3, fontsize=9, title="variant")
    place_labels(axes[0, 1], to_label, obstacles=points)
    _note_below(fig, legend, roofline_notes(sub, zero_flop, lbl_16bit, no_roof, ceil, has_l1))
    style.save(fig, out_svg)


def roofline_notes(sub: pd.DataFrame, zero_flop: list[str], lbl_16bit: list[str], no_roof: list[str],
                   ceil: pd.Series, has_l1: bool) -> list[str]:  # fmt: skip
    """The lines under the roofline: what is not drawn, and where 16-bit FLOPs come from."""
    notes = []
    if set(sub["precision"].dropna()) - {PRECISIONS[0]}:
        notes.append("TF32/FP16/BF16 points: the model's useful FLOPs (Nsight Compute's FLOP counters count FP32 "
                     "instructions, not tensor-core HMMA);\nFP32 points: the FP32 FLOPs Nsight Compute counted.")
    if no_roof and ceil.get("has_ceilings", False):
        names = ", ".join(p.upper() for p in no_roof)
        notes.append(f"No {names} compute roof: this GPU's ceilings.json has no tensor-core ceiling "
                     "(measured before the stage timed them).")
    if lbl_16bit:
        notes.append(f"Right: the kernels of {', '.join(lbl_16bit)} are not drawn (ncu's FP32 FLOPs miss their "
                     "tensor-core work).")
    if zero_flop:
        notes.append(f"Not on the log axes (0 FP32 FLOPs: max pool only compares): {', '.join(zero_flop)}.")
    if not has_l1:
        notes.append("L1 intensity not plotted: no L1 ceiling was measured (values in results/tidy_kernels.csv).")
    return notes


def matplotlib_color(color) -> str:
    """A colour as '#rrggbb' (seaborn palettes give RGB tuples)."""
    from matplotlib.colors import to_hex

    return to_hex(color)


def output_share(network: str, group: str | None, groups: Mapping[str, Sequence[str]] | None) -> float:
    """The group's output map as a share of input + output map (values), from the network file;
    NaN when the group's layers are not known."""
    if not groups or group not in groups:
        return math.nan
    from pipeline.core.networks import load_network
    from pipeline.model.costs import group_input_shape, group_shapes

    first, last = groups[group]
    net = load_network(network)
    shapes = group_shapes(net.group(first, last), group_input_shape(net, first))
    return shapes[-1].values / (shapes[0].values + shapes[-1].values)


def floors(rows: pd.DataFrame, share: float) -> pd.DataFrame:
    """Per batch and precision: the compulsory DRAM bytes per image (input + output + weights/batch,
    the plan's column, in the precision's bytes per value) split into what must be read (input +
    weights/batch) and written (output). The write floor is the plan's ``output_bytes_per_image``;
    for rows without it (plans written before that column), ``share`` of the maps (see
    :func:`output_share`). ``rows`` are one fusion group's."""
    keys = ["batch", "precision"]
    comp = rows.dropna(subset=["compulsory_dram_bytes_per_image"])
    comp = comp.reindex(columns=[*keys, "compulsory_dram_bytes_per_image", "weight_bytes", "output_bytes_per_image"])
    # per key the first value each column has (an archive's plan may predate output_bytes_per_image)
    comp = comp.groupby(keys, as_index=False, sort=True).first()
    maps = comp["compulsory_dram_bytes_per_image"] - comp["weight_bytes"].fillna(0) / comp["batch"]
    comp["write_floor"] = comp.pop("output_bytes_per_image").fillna(maps * share)
    comp["read_floor"] = comp["compulsory_dram_bytes_per_image"] - comp["write_floor"]
    return comp.rename(columns={"compulsory_dram_bytes_per_image": "total_floor"})


BELOW_FLOOR_NOTE = ("Hollow points lie below their floor: with caches flushed before the profiled range, "
                    "writes still held in L2 when the range ends\nnever reach DRAM inside it and are not counted, "
                    "so bytes written (lower right) fall short of the output, and the total of its floor.")
READ_BELOW_NOTE = ("Bytes READ below their floor (input + weights/batch) are not explained by writes held in L2: "
                   "look at those profiles.")
TOTAL_ONLY_NOTE = ("Hollow points lie below the compulsory floor; this profile has no read/write split, so whether "
                   "writes still held in L2\nat the end of the range (not counted) explain it cannot be shown here.")
ZERO_NOTE = "0 B written (all still in L2)"
SM_WRITES_NOTE = "x: L2 write traffic from the SMs (32-byte sectors, counted even while in L2)"


def bandwidth_saving(tidy: pd.DataFrame, out_svg: Path, network: str, ceilings: pd.DataFrame | None = None,
                     paper: Mapping[str, float] | None = None,
                     groups: Mapping[str, Sequence[str]] | None = None) -> None:  # fmt: skip
    """DRAM bytes per image by variant vs batch: the total, then read and written separately, each
    against its floor; model dashed where it differs from the floor; L2 crossover and paper marked.

    ``groups`` (the config's fusion groups of ``network``) splits the compulsory traffic into the
    read floor (input + weights/batch) and the write floor (output). ``paper`` may hold
    ``lbl_bytes``, ``fused_bytes`` (per image) and ``network`` (the network the paper measured):
    drawn as red stars when it is this network, else quoted as text (no marker).
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
    group = sub["group"].dropna().iloc[0] if sub["group"].notna().any() else None
    # the floors of the drawn group only: another group of the network has other maps
    fl = floors(allrows[allrows["group"] == group] if group is not None else allrows,
                output_share(network, group, groups))
    split = sub[["dram_read_bytes_per_image", "dram_write_bytes_per_image"]].notna().all(axis=1).any()
    style.apply()
    fig = style.plt.figure(figsize=(style.WIDTH_IN, 8.4 if split else 4.8))
    gs = fig.add_gridspec(2 if split else 1, 2, height_ratios=[1.3, 1] if split else [1], hspace=0.5, wspace=0.32)
    ax = fig.add_subplot(gs[0, :])
    panels = [(ax, "dram_bytes_per_image", "total_floor", "read + written")]
    if split:
        panels += [(fig.add_subplot(gs[1, 0], sharex=ax), "dram_read_bytes_per_image", "read_floor", "read"),
                   (fig.add_subplot(gs[1, 1], sharex=ax), "dram_write_bytes_per_image", "write_floor", "written")]
    order = variant_order(sub)
    pal = style.variant_palette(sub)
    batches = sorted(set(sub["batch"]) | set(fl["batch"]))
    below_in: dict[str, bool] = {}
    zero_any = sm_writes_any = False
    precisions = [p for p in PRECISIONS if p in set(sub["precision"])]
    for pax, col, floor_col, what in panels:
        floor_of = {p: fl[fl["precision"] == p].set_index("batch")[floor_col] for p in precisions}
        positive = [v for v in sub[col].tolist() + fl[floor_col].tolist() if finite(v) and v > 0]
        bottom = min(positive) / 3 / MB if positive else 1e-3
        for v in order:
            s = sub[sub["variant"] == v].sort_values("batch").dropna(subset=[col])
            if s.empty:
                continue
            y = s[col].to_numpy(float)
            zero = y <= 0
            floor = floor_of.get(s["precision"].iloc[0], pd.Series(dtype=float))  # the variant's own precision
            below = ~zero & (y < floor.reindex(s["batch"]).to_numpy(float) * (1 - 1e-3))
            yplot = np.where(zero, bottom, y / MB)
            pax.plot(s["batch"], yplot, color=pal[v], lw=1.8, label=v if pax is ax else None)
            ok = ~zero & ~below
            pax.scatter(s["batch"][ok], yplot[ok], color=pal[v], s=36, zorder=4)
            pax.scatter(s["batch"][below], yplot[below], facecolor="white", edgecolor=pal[v], lw=1.6, s=40, zorder=5)
            pax.scatter(s["batch"][zero], yplot[zero], marker="v", facecolor="white", edgecolor=pal[v], lw=1.4,
                        s=46, zorder=5, clip_on=False)
            below_in[what] = below_in.get(what, False) or bool(below.any())
            zero_any |= bool(zero.any())
            if col == "dram_write_bytes_per_image" and "l2_sm_write_bytes_per_image" in s:
                w = s["l2_sm_write_bytes_per_image"].to_numpy(float)
                ok_w = np.isfinite(w) & (w > 0)
                pax.scatter(s["batch"][ok_w], w[ok_w] / MB, marker="x", color=pal[v], s=40, lw=1.6, zorder=6)
                sm_writes_any |= bool(ok_w.any())
            if pax is ax:
                m = allrows[(allrows["variant"] == v)].drop_duplicates("batch").sort_values("batch")
                mod = m.set_index("batch")["model_dram_bytes_per_image"]
                differs = (mod - floor_of.get(m["precision"].iloc[0], pd.Series(dtype=float)).reindex(mod.index)).abs() > 1e-3 * mod
                if mod.notna().any() and differs.any():
                    ax.plot(mod.index, mod / MB, ls=style.MODEL_LINESTYLE, color=pal[v], lw=1.1, alpha=0.8)
        for i, (p, floor) in enumerate(floor_of.items()):
            if not floor.notna().any():
                continue
            lab = {"total_floor": "compulsory floor: input + output + weights/batch\n(also the model of every "
                                  "fused variant)",
                   "read_floor": "read floor: input + weights/batch", "write_floor": "write floor: output"}[floor_col]
            lab = f"{lab} ({p})" if len(floor_of) > 1 else lab
            pax.plot(floor.index, floor / MB, color="black", ls=(":", "-.", "--")[i % 3], lw=1.6, label=lab, zorder=3)
        pax.set_yscale("log")
        pax.set_ylim(bottom=bottom * 0.999)
        log_ticks(pax)
        _batch_axis(pax, batches)
        pax.set_ylabel("MB per image (log)" if pax is not ax else "DRAM bytes per image (MB, log scale)")
        if pax is not ax:
            pax.tick_params(labelsize=10)
            pax.set_xlabel("batch size", fontsize=11)
            pax.set_title(f"bytes {what}", fontsize=11)
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
    Line2D = style.plt.Line2D
    notes = []
    if any(l.get_linestyle() == style.MODEL_LINESTYLE for l in ax.get_lines()):
        ax.plot([], [], ls=style.MODEL_LINESTYLE, color="#4d4d4d", label="model prediction (dashed)")
    if any(below_in.values()):
        ax.add_line(Line2D([], [], ls="none", marker="o", mfc="white", mec="#4d4d4d", label="below its floor (note)"))
    if below_in.get("written"):
        notes.append(BELOW_FLOOR_NOTE)
    elif below_in.get("read + written") and not split:
        notes.append(TOTAL_ONLY_NOTE)
    if below_in.get("read"):
        notes.append(READ_BELOW_NOTE)
    if zero_any:
        ax.add_line(Line2D([], [], ls="none", marker="v", mfc="white", mec="#4d4d4d", label=ZERO_NOTE))
    if sm_writes_any:
        ax.add_line(Line2D([], [], ls="none", marker="x", color="#4d4d4d", label=SM_WRITES_NOTE))
    if split and not finite(fl["write_floor"].iloc[0]):
        notes.append("Read and write floors not drawn: neither the plan's output bytes nor the fusion group's "
                     "layers were given.")
    if paper:
        if paper.get("network") == network:
            for key, lab in (("lbl_bytes", "paper layer-by-layer"), ("fused_bytes", "paper fused")):
                if finite(paper.get(key)):
                    ax.scatter([max(batches)], [paper[key] / MB], marker=style.PAPER_MARKER, s=220,
                               color=style.PAPER_COLOR, edgecolor="black", zorder=6, label=f"{lab} (FPGA)")
        elif finite(paper.get("lbl_bytes")) and finite(paper.get("fused_bytes")):
            save = 100 * (1 - paper["fused_bytes"] / paper["lbl_bytes"])
            # another network than the one measured: quoted for scale as text, nothing plotted
            notes.append(f"For scale, the paper (FPGA, {paper.get('network', '?')}, another network, not plotted): "
                         f"{paper.get('lbl_value', paper['lbl_bytes'] / MB):g} -> "
                         f"{paper.get('fused_value', paper['fused_bytes'] / MB):g} MB per image ({save:.0f} % less).")
    fig.suptitle(f"{title}\n{suffix}", fontsize=13)
    fig.subplots_adjust(top=0.87 if split else 0.8)
    handles, labels = ax.get_legend_handles_labels()
    for pax, *_ in panels[1:]:
        for h, lab in zip(*pax.get_legend_handles_labels()):
            handles.append(h)
            labels.append(lab)
    legend = fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.03 if split else -0.02),
                        ncol=3, fontsize=9, frameon=False)
    _note_below(fig, legend, notes)
    style.save(fig, out_svg)


PAPER_BYTES_PER_VALUE = int(PAPER_READING["bytes/value"])  # the paper's counts, as the paper reading reads them
OWN = [str(s) for s in Strategy if s.own_kernels]  # our kernels: lbl and fused (no PyTorch anchor)
TRAFFIC_CONVENTION = (
    "Convention: decimal MB and KB per image at the kernels' own bytes per value ({bpv}); off-chip bytes are feature "
    "maps + weights/batch, as DRAM moves them and Nsight Compute\ncounts them (and as the plan's model predicts "
    "them). The paper's figures count feature maps only at {paper_bpv} B/value and read as MiB/KiB (the report's "
    "paper reading); they are shown\nre-expressed at the kernels' bytes per value ({paper_lbl:g} MB -> "
    "{paper_fused:g} MB, {paper_onchip:g} KB as printed)."
)


def _own_rows(tidy: pd.DataFrame, network: str) -> tuple[pd.DataFrame, str]:
    """The network's lbl and fused rows of one source (the one a measured figure shows, else this
    run's planned rows), with the source's label ("" for planned rows only)."""
    rows = tidy[(tidy["network"] == network) & tidy["strategy"].isin(OWN)] if not tidy.empty else tidy
    pick = pick_source(measured(rows))
    if pick is None:
        return rows[rows["source"] == SOURCE_THIS_RUN] if len(rows) else rows, ""
    return rows[(rows["source"] == pick[0]) & (rows["gpu"] == pick[1])], _source_suffix(measured(tidy), *pick)


def record_label(r: pd.Series) -> str:
    """A short label from a row's record (not its name): 'lbl gen fp16', 'reuse 2x14 gen fp16'."""
    parts = [r.get("strategy"), r.get("tile"), r.get("impl"), r.get("precision")]
    return " ".join(str(x) for x in parts if isinstance(x, str) and x)


def _at_profiled_batch(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (network, variant): at the largest batch with a DRAM measurement, else the
    largest batch (planned rows: the model's numbers only)."""
    out = []
    for _, g in rows.groupby(["network", "variant"], sort=False):
        prof = g.dropna(subset=["dram_bytes_per_image"])
        out.append((prof if len(prof) else g).sort_values("batch").iloc[-1])
    return pd.DataFrame(out)


def paper_traffic(tidy: pd.DataFrame, kernels: pd.DataFrame | None, paper: pd.DataFrame, out_svg: Path) -> None:
    """The paper's headline case beside ours: off-chip traffic per image layer by layer and fused
    (paper, the model of our kernels' passes and pyramids from plan.csv, Nsight Compute) and the
    on-chip bytes (the paper's 362 KB, the model's, the generated kernel's shared memory per block).

    Drawn for the network the paper measured (``paper_marks``: vgg_e). Without GPU measurements of it
    the paper and the model's paper reading are drawn alone and a line says why; without the
    paper-comparison table it is a placeholder.
    """
    marks = paper_marks(paper)
    network = marks.get("network", "vgg_e")
    title = f"Off-chip traffic and on-chip storage - {network}: GPU vs the paper (FPGA)"
    if not marks or not finite(marks.get("lbl_bytes")) or not finite(marks.get("fused_bytes")):
        placeholder(out_svg, title, "no paper comparison (results/model/paper_comparison.csv has no VGG-E figures)")
        return

    tidy = tidy if tidy is not None else pd.DataFrame()
    rows, suffix = _own_rows(tidy, network) if not tidy.empty else (tidy, "")
    rows = _at_profiled_batch(rows) if len(rows) else rows
    has_model = len(rows) and rows["model_dram_bytes_per_image"].notna().any()
    has_measured = len(rows) and rows["dram_bytes_per_image"].notna().any()
    precisions = [p for p in PRECISIONS if len(rows) and p in set(rows["precision"])] or [PRECISIONS[0]]
    lbl = rows[rows["strategy"] == Strategy.LBL] if len(rows) else rows
    fused = rows[rows["strategy"].isin(FUSED)] if len(rows) else rows
    pal = style.variant_palette(rows) if len(rows) else {}
    # bars: (panel, section, label, bytes, kind, colour); kind: paper, model, measured, kernel
    bars: list[tuple[str, str, str, float, str, str]] = []
    for p in precisions:
        scale = BYTES_PER_VALUE[p] / PAPER_BYTES_PER_VALUE
        at = f" at {BYTES_PER_VALUE[p]} B/value" if BYTES_PER_VALUE[p] != PAPER_BYTES_PER_VALUE else ""
        for section, key, model_key in (("layer by layer", "lbl_bytes", "model_lbl_bytes_paper_reading"),
                                        ("fused", "fused_bytes", "model_fused_bytes_paper_reading")):
            bars.append(("traffic", section, f"paper (FPGA){at}", marks[key] * scale, "paper", style.PAPER_COLOR))
            if not has_model and finite(marks.get(model_key)):
                bars.append(("traffic", section, f"model, paper reading{at}", marks[model_key] * scale, "model",
                             "#7f7f7f"))  # fmt: skip
            for _, r in (lbl if section == "layer by layer" else fused).iterrows():
                if r["precision"] != p:
                    continue
                color = pal.get(r["variant"], "#4d4d4d")
                b = int(r["batch"])
                if finite(r["model_dram_bytes_per_image"]):
                    bars.append(("traffic", section, f"model: {record_label(r)} (b{b})",
                                 r["model_dram_bytes_per_image"], "model", color))  # fmt: skip
                if finite(r["dram_bytes_per_image"]):
                    bars.append(("traffic", section, f"measured: {record_label(r)} (ncu, b{b})",
                                 r["dram_bytes_per_image"], "measured", color))  # fmt: skip
        if finite(marks.get("onchip_bytes")):
            bars.append(("onchip", "on chip", f"paper (FPGA, whole accelerator){at}", marks["onchip_bytes"] * scale,
                         "paper", style.PAPER_COLOR))  # fmt: skip
        if not has_model and finite(marks.get("model_onchip_bytes_paper_reading")):
            bars.append(("onchip", "on chip", f"model, paper reading{at}",
                         marks["model_onchip_bytes_paper_reading"] * scale, "model", "#7f7f7f"))  # fmt: skip
        for _, r in fused.iterrows() if len(fused) else ():
            if r["precision"] != p:
                continue
            color = pal.get(r["variant"], "#4d4d4d")
            per_block = r["onchip_bytes_per_block"] if "onchip_bytes_per_block" in r else math.nan
            launched = launched_shared_bytes(pd.DataFrame([r]), kernels).iloc[0]
            name = record_label(r)
            for label, value, kind in ((f"model: {name}, one tile's pyramid", r["model_onchip_bytes"], "model"),
                                       (f"kernel: {name}, shared memory per block", per_block, "kernel"),
                                       (f"launched: {name} (ncu, per block)", launched, "measured")):
                if finite(value) and value > 0:
                    bars.append(("onchip", "on chip", label, value, kind, color))
    traffic = [b for b in bars if b[0] == "traffic"]
    onchip = [b for b in bars if b[0] == "onchip"]
    style.apply()
    heights = [len(traffic) + 1, max(len(onchip), 1) + 0.5]
    fig, axes = style.plt.subplots(2, 1, figsize=(style.WIDTH_IN, 2.2 + 0.36 * sum(heights)),
                                   gridspec_kw={"height_ratios": heights})  # fmt: skip
    for ax, items, scale, unit in ((axes[0], traffic, MB, "MB per image"), (axes[1], onchip, KB, "KB")):
        ys, y, last = [], 0.0, None
        for _, section, *_ in items:
            y += 0.6 if last is not None and section != last else 0.0  # a gap between sections
            ys.append(y)
            y, last = y + 1, section
        for yy, (_, section, label, value, kind, color) in zip(ys, items):
            hatch = "//" if kind == "model" else (".." if kind == "kernel" else None)
            face = "white" if kind in ("model", "kernel") else color
            ax.barh(yy, value / scale, color=face, edgecolor=color, hatch=hatch, lw=1.4,
                    ls=style.MODEL_LINESTYLE if kind == "model" else "-", height=0.72)
            ax.annotate(f"{value / scale:.3g}", (value / scale, yy), xytext=(9 if kind == "paper" else 3, 0),
                        textcoords="offset points", va="center", fontsize=9)
            if kind == "paper":
                ax.scatter([value / scale], [yy], marker=style.PAPER_MARKER, s=160, color=style.PAPER_COLOR,
                           edgecolor="black", zorder=5)  # fmt: skip
        ax.set_yticks(ys, [f"{s}: {lab}" if ax is axes[0] else lab for _, s, lab, *_ in items], fontsize=9)
        ax.invert_yaxis()
        values = [v / scale for *_, v, _, _ in items if v > 0]
        if ax is axes[0] and values:
            ax.set_xscale("log")
            ax.set_xlim(min(values) / 2, max(values) * 4)
            ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        elif values:
            ax.set_xlim(0, max(values) * 1.25)
        ax.set_xlabel(f"{unit} (log scale)" if ax is axes[0] else unit)
    axes[0].set_title("off-chip (DRAM) traffic per image", fontsize=12)
    axes[1].set_title("on-chip storage", fontsize=12)
    bpv = ", ".join(f"{p}: {BYTES_PER_VALUE[p]} B" for p in precisions)
    notes = [TRAFFIC_CONVENTION.format(bpv=bpv, paper_bpv=PAPER_BYTES_PER_VALUE, paper_lbl=marks["lbl_value"],
                                       paper_fused=marks["fused_value"], paper_onchip=marks.get("onchip_value", math.nan))]
    paper_cut = 100 * (1 - marks["fused_bytes"] / marks["lbl_bytes"])
    cuts = [f"paper {paper_cut:.0f} % less"]
    for kind, col in (("model", "model_dram_bytes_per_image"), ("measured", "dram_bytes_per_image")):
        for p in precisions:
            lb = lbl[lbl["precision"] == p][col].dropna() if len(lbl) else pd.Series(dtype=float)
            for _, r in fused[fused["precision"] == p].iterrows() if len(fused) else ():
                if len(lb) and finite(r[col]):
                    cuts.append(f"{kind} {record_label(r)} {100 * (1 - r[col] / lb.iloc[0]):.1f} % less than "
                                f"{record_label(lbl[lbl['precision'] == p].iloc[0])}")  # fmt: skip
    notes.append("Fused vs layer by layer: " + "; ".join(cuts) + ".")
    if len(rows):
        notes.append("Kernels: " + ", ".join(rows["variant"]) + ".")
    if len(rows) and rows["weight_bytes"].notna().any():
        r = rows.dropna(subset=["weight_bytes"]).iloc[0]
        notes.append(f"Weights/batch in these bars: {r['weight_bytes'] / r['batch'] / MB:.3g} MB per image at "
                     f"batch {int(r['batch'])} (not in the paper's count).")
    notes.append("The paper's on-chip figure is its whole accelerator (reuse buffers only, paper reading); a GPU "
                 "block holds one tile's buffers,\nand each SM runs as many blocks at once as fit.")
    if not has_measured:
        why = (f"{NO_GPU_TEXT} (nor in any archive)" if measured(tidy).empty else
               f"no {network} kernels measured in this run or the archives")
        notes.append(f"No GPU bars: {why}. "
                     + ("The model's bars are the planned kernels'." if has_model else
                        "Model bars: the paper comparison's five-layer group under the paper reading (feature maps only)."))
    fig.suptitle(title + (f"\n{suffix}" if suffix else ""), fontsize=13)
    fig.tight_layout()  # room between the panels for the axis label and the next title
    import textwrap

    lines = [w for note in notes for part in note.split("\n") for w in (textwrap.wrap(part, 150) or [""])]
    fig.text(0.5, 0.0, "\n".join(lines), ha="center", va="top", fontsize=8.5, color="#444444",
             transform=fig.transFigure)
    style.save(fig, out_svg)


def launched_shared_bytes(rows: pd.DataFrame, kernels: pd.DataFrame | None) -> pd.Series:
    """Shared memory per block each row's kernels were launched with (Nsight Compute, static +
    dynamic; the largest kernel of the pass), aligned to ``rows``; NaN where not profiled."""
    if kernels is None or kernels.empty or "shared_bytes" not in kernels:
        return pd.Series(np.nan, index=rows.index)
    keys = [c for c in KEYS if c in rows.columns and c in kernels.columns]
    most = kernels.groupby(keys, as_index=False)["shared_bytes"].max()
    return pd.Series(rows[keys].merge(most, on=keys, how="left")["shared_bytes"].to_numpy(), index=rows.index)


def smem_limit_bytes(rows: pd.DataFrame) -> float:
    """The largest shared memory one block may use on the rows' build target (pipeline/core/arch.py)."""
    from pipeline.core.arch import MAX_SMEM_PER_BLOCK_BYTES

    arch = rows["build_arch"].dropna() if "build_arch" in rows else pd.Series(dtype=str)
    return float(MAX_SMEM_PER_BLOCK_BYTES.get(arch.iloc[0], math.nan)) if len(arch) else math.nan


def tile_tradeoff_measured(tidy: pd.DataFrame, out_svg: Path, network: str, batch: int | None = None,
                           kernels: pd.DataFrame | None = None) -> None:  # fmt: skip
    """Measured: DRAM bytes and time per image against the shared memory each fused kernel was
    launched with, one point per fused variant, each labelled with its tile and the model's
    on-chip bytes for that tile (which count every pyramid buffer at once, so they run higher)."""
    title = f"Tile-size trade-off (measured) - {network}"
    sel = _select(tidy, network, title, out_svg)
    if sel is None:
        return
    sub, suffix = sel
    batch = batch or int(sub["batch"].max())
    f = sub[(sub["batch"] == batch) & sub["strategy"].isin(FUSED)].copy()
    f["x_bytes"] = launched_shared_bytes(f, kernels)
    launched = f["x_bytes"].notna().any()
    if not launched:  # no per-kernel profile: fall back to the model's bytes, and say so on the axis
        f["x_bytes"] = f["model_onchip_bytes"]
    f = f.dropna(subset=["x_bytes"])
    if f.empty:
        placeholder(out_svg, title, f"{suffix}: no fused variants measured at batch {batch}")
        return
    ref = sub[(sub["batch"] == batch) & (sub["strategy"] == Strategy.LBL)]
    fig, axes = style.figure(n_cols=2, height_in=4.8)
    pal = style.strategy_palette()
    limit = smem_limit_bytes(f) if launched else math.nan
    xmax = max(f["x_bytes"].max(), limit if finite(limit) else 0) / KB * 1.08
    # the tiles that fit sit close under the limit: start the axis near the smallest, not at 0, so that
    # their labels have room (every fused kernel fills most of the shared memory it may use)
    xmin = 0.0 if f["x_bytes"].min() < 0.5 * xmax * KB else math.floor(0.8 * f["x_bytes"].min() / KB / 10) * 10
    panels = ((axes[0, 0], "dram_bytes_per_image", MB, "DRAM bytes per image (MB)"),
              (axes[0, 1], "us_per_image", 1.0, "time per image (us, median)"))
    # one line per strategy, precision and kernel family (a line across precisions would join kernels
    # that differ in more than their tile); the strategy's colour, the precision's marker
    f["family"] = f["impl"].fillna("") if "impl" in f else ""
    markers = dict(zip(sorted(f["precision"].dropna().unique(), key=list(PRECISIONS).index), "osD^v"))
    lines = ["strategy", "precision", "family"]
    for ax, col, scale, label in panels:
        for (strategy, precision, family), s in f.groupby(lines):
            s = s.sort_values("x_bytes")
            ax.plot(s["x_bytes"] / KB, s[col] / scale, marker=markers[precision], ms=7, color=pal[strategy],
                    ls=":" if family == "gen" else "-", label=strategy)
        if len(ref) and finite(ref[col].iloc[0]):
            ax.axhline(ref[col].iloc[0] / scale, color=pal[Strategy.LBL], ls="--", lw=1.2, label="layer-by-layer")
        if finite(limit):
            ax.axvline(limit / KB, color="#b22222", ls=":", lw=1.4,
                       label=f"most shared memory one block may use: {limit / 1024:.0f} KiB "
                             f"({f['build_arch'].dropna().iloc[0]})")
        ax.set_xlabel("shared memory per block (KB, ncu)" if launched else "on-chip storage per block (KB, model)")
        ax.set_ylabel(label)
        top = np.nanmax([f[col].max() / scale] + [ref[col].iloc[0] / scale if len(ref) else 0])
        ax.set_ylim(0, top * 1.35 if finite(top) and top > 0 else 1)
        ax.set_xlim(xmin, xmax)
    fig.suptitle(f"{title}, batch {batch}\n{suffix}", fontsize=13)
    fig.tight_layout()
    from matplotlib.lines import Line2D

    # one entry per strategy (a plain line in its colour; its lines differ in marker and style) and
    # per reference line, then the precisions' markers
    entries = dict(zip(*reversed(axes[0, 0].get_legend_handles_labels())))
    labels = list(entries)
    handles = [Line2D([], [], color=pal[lab], ls="-") if lab in pal else h for lab, h in entries.items()]
    handles += [Line2D([], [], color="#555555", marker=m, ls="none") for m in markers.values()]
    labels += list(markers)
    if (f["family"] == "gen").any():
        handles.append(Line2D([], [], color="#555555", ls=":"))
        labels.append("generated kernels (kernels/generate.py)")
    legend = fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False,
                        fontsize=9)

    def tag(r: pd.Series) -> str:
        return f"{r['tile']}{' gen' if r['family'] == 'gen' else ''} {r['precision']}"

    for ax, col, scale, _ in panels:
        pts = [(r["x_bytes"] / KB, r[col] / scale) for _, r in f.iterrows() if finite(r[col])]
        for _, g in f.dropna(subset=[col]).groupby(lines):
            g = g.sort_values("x_bytes")
            pts += along(list(g["x_bytes"] / KB), list(g[col] / scale))
        labs = [Label(tag(r), (r["x_bytes"] / KB, r[col] / scale), pal[r["strategy"]])
                for _, r in f.iterrows() if finite(r[col])]
        place_labels(ax, labs, obstacles=pts, fontsize=9)
    if launched:
        model = "; ".join(f"{st} " + ", ".join(f"{tag(r)}: {r['model_onchip_bytes'] / KB:.0f}"
                                               for _, r in g.sort_values("model_onchip_bytes").iterrows())
                          for st, g in f.dropna(subset=["model_onchip_bytes"]).groupby("strategy"))
        _note_below(fig, legend, [
            f"The model's on-chip bytes for these tiles (KB): {model}.",
            "The model holds every layer's whole tile at once (docs/model.md); the kernels make pool1 a few rows at "
            "a time,\nso they keep only a few rows of the input patch and of conv1's output (the model's two "
            "largest buffers) and fit one block.",
        ] if model else [])
    style.save(fig, out_svg)


def speedup_vs_batch(tidy: pd.DataFrame, out_svg: Path, network: str) -> None:
    """Fused variants' speedup over lbl (same network, precision and kernel family: generated
    fused over lbl-gen, hand-written over lbl) and over the fastest PyTorch anchor (same network and
    precision), against batch; band = IQR-derived spread. Every network the source measured, one
    line style each (``network`` first)."""
    title = f"Speedup - {network}"
    sel = _select(tidy, None, title, out_svg)  # every network the source measured
    if sel is None:
        return
    sub, suffix = sel
    networks = network_order(sub, network)
    title = f"Speedup - {', '.join(networks)}"
    net_ls = network_styles(networks)
    fused = sub[sub["strategy"].isin(FUSED)]
    fig, axes = style.figure(n_cols=2, height_in=4.8, sharey=True)
    pal = style.variant_palette(fused)
    for ax, ref, name in ((axes[0, 0], Strategy.LBL, "over our layer-by-layer\n(same network, precision, kernel family)"),
                          (axes[0, 1], Strategy.VENDOR, "over the fastest PyTorch path\n(same network and precision)")):  # fmt: skip
        col = f"speedup_vs_{ref}"
        d = fused.dropna(subset=[col])
        if d.empty:
            ax.text(0.5, 0.5, f"no {ref} measurements", ha="center", transform=ax.transAxes,
                    color=style.PLACEHOLDER_COLOR, fontsize=12)
        for net, v in network_variant_order(d, network):
            s = d[(d["network"] == net) & (d["variant"] == v)].sort_values("batch")
            ax.plot(s["batch"], s[col], marker="o", color=pal[v], ls=net_ls[net], label=v)
            ax.fill_between(s["batch"], s[f"{col}_lo"], s[f"{col}_hi"], color=pal[v], alpha=0.2, lw=0)
        ax.axhline(1.0, color="black", lw=1.0, ls="--")
        _batch_axis(ax, sub["batch"])
        ax.set_title(name, fontsize=12)
    axes[0, 0].set_ylabel("speedup (x, median; band: IQR spread)")
    anchor = axes[0, 0] if axes[0, 0].get_legend_handles_labels()[0] else axes[0, 1]
    handles, labels = anchor.get_legend_handles_labels()
    handles += network_handles(net_ls)
    labels += [h.get_label() for h in network_handles(net_ls)]
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4 if len(networks) < 2 else 2,
                   frameon=False, fontsize=None if len(networks) < 2 else 9)
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
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=1, frameon=False, fontsize=9)
    note = "" if _this_run_has(tidy) else f"\n({NO_GPU_TEXT}: archived runs only)"
    fig.suptitle(f"{title}, batch {batch}{note}", fontsize=13)
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


def compact_names(names: Sequence[str]) -> list[str]:
    """Kernel names as lines, those sharing a prefix up to their last '_' folded into one
    (fused_reuse_t2, fused_reuse_t4 -> 'fused_reuse_t2/t4'), then lines that differ in one inner
    '_' part alone into braces (fused_tc_recompute_t2x13/t2x7, fused_tc_reuse_t2x13/t2x7 ->
    'fused_tc_{recompute,reuse}_t2x13/t2x7'), so a crowded spot's label stays short."""
    groups: dict[tuple[str, str], list[str]] = {}
    for n in dict.fromkeys(names):
        numbered = re.fullmatch(r"(.+) (#\d+)", n)  # lbl_maxpool #1, lbl_maxpool #2 -> lbl_maxpool #1/#2
        head, sep, tail = (numbered[1], " ", numbered[2]) if numbered else n.rpartition("_")
        groups.setdefault((head, sep) if head else (n, ""), []).append(tail if head else "")
    lines = [f"{h}{sep}{'/'.join(t)}" if sep else h for (h, sep), t in groups.items()]
    folded: list[list] = []  # [parts of the first line, the inner position that differs (or None), its values]
    for parts in (line.split("_") for line in lines):
        for f in folded:
            first, pos, values = f
            same = len(first) == len(parts) and [i for i in range(len(parts)) if parts[i] != first[i]]
            if same and pos is None and len(same) == 1 and 0 < same[0] < len(parts) - 1:
                f[1], f[2] = same[0], [first[same[0]], parts[same[0]]]
                break
            if same and pos is not None and same == [pos]:
                values.append(parts[pos])
                break
        else:
            folded.append([parts, None, []])
    return ["_".join(p) if i is None else "_".join([*p[:i], "{" + ",".join(v) + "}", *p[i + 1:]])
            for p, i, v in folded]


def occupancy(kernels: pd.DataFrame, out_svg: Path, network: str, batch: int | None = None,
              tidy: pd.DataFrame | None = None) -> None:  # fmt: skip
    """Achieved (Nsight Compute) against theoretical occupancy, one point per kernel. Kernels at the
    same spot are drawn in a ring around it (black cross: the spot) and named in one label."""
    title = f"Occupancy - {network}"
    k = kernels if kernels is not None else pd.DataFrame()
    if not k.empty:
        k = k[k["network"] == network].dropna(subset=["achieved_occupancy_pct", "theoretical_occupancy_pct"])
        if "impl" in k:  # the hand-written kernels and the anchors; the generated ones' are in the kernels table
            k = k[k["impl"].fillna("") != "gen"]
    pick = pick_source(k) if not k.empty else None
    if pick is None:
        placeholder(out_svg, title)
        return
    k = k[(k["source"] == pick[0]) & (k["gpu"] == pick[1])]
    batch = batch or int(k["batch"].max())
    k = k[k["batch"] == batch]
    k = k.assign(label=kernel_labels(k))
    names = tidy if tidy is not None and not tidy.empty and "gpu_name" in tidy else k
    suffix = _source_suffix(names, *pick)
    fig, axes = style.figure(height_in=5.6)
    ax = axes[0, 0]
    order = variant_order(k)
    pal = style.variant_palette(k)
    ax.plot([0, 100], [0, 100], color="black", lw=1, ls="--", label="achieved = theoretical")
    vendor = k[k["strategy"] == Strategy.VENDOR]
    ours = k[k["strategy"] != Strategy.VENDOR]
    # the vendor library's many long template names stay unlabelled: its points speak as a cloud
    for v in [v for v in order if v in set(vendor["variant"])]:
        s = vendor[vendor["variant"] == v]
        ax.scatter(s["theoretical_occupancy_pct"], s["achieved_occupancy_pct"], s=55, color=pal[v], label=v,
                   edgecolor="black", lw=0.4, zorder=3, alpha=0.8)
    spot_x = ours["theoretical_occupancy_pct"].round(0)
    spot_y = ours["achieved_occupancy_pct"].round(0)
    labels, points = [], list(zip(k["theoretical_occupancy_pct"], k["achieved_occupancy_pct"]))
    seen: set[str] = set()
    from matplotlib.transforms import ScaledTranslation

    for (x, y), grp in ours.groupby([spot_x, spot_y]):
        n = len(grp)
        radius = 0 if n == 1 else 5.5 + 0.6 * n  # points
        for i, (_, r) in enumerate(grp.sort_values("label").iterrows()):
            a = 2 * math.pi * i / n + math.pi / 2
            shift = ScaledTranslation(radius * math.cos(a) / 72, radius * math.sin(a) / 72, fig.dpi_scale_trans)
            ax.scatter([r["theoretical_occupancy_pct"]], [r["achieved_occupancy_pct"]], s=50, color=pal[r["variant"]],
                       edgecolor="black", lw=0.4, zorder=4, transform=ax.transData + shift,
                       label=r["variant"] if r["variant"] not in seen else None)
            seen.add(r["variant"])
        if n > 1:
            ax.scatter([x], [y], marker="+", s=40, color="black", lw=1.0, zorder=5)
            points.append((x, y, 2 * radius + 9))
        lines = compact_names(list(grp.sort_values("label")["label"]))
        mx, my = grp["theoretical_occupancy_pct"].mean(), grp["achieved_occupancy_pct"].mean()
        head = f"{n} kernels at {mx:.3g} %, {my:.3g} %:\n" if n > 1 else ""
        labels.append(Label(head + "\n".join(lines), (x, y)))
    ax.set_xlim(0, 108)
    ax.set_ylim(0, 108)
    ax.set_xlabel("theoretical occupancy (% of max warps)")
    ax.set_ylabel("achieved occupancy (% of max warps)")
    ax.set_title(f"{title}, batch {batch}\n{suffix}", fontsize=13)
    handles, labs = ax.get_legend_handles_labels()
    rank = {v: i for i, v in enumerate(order)}
    pairs = sorted(zip(handles, labs), key=lambda p: rank.get(p[1], -1))
    ax.legend([h for h, _ in pairs], [lab for _, lab in pairs], loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=9, frameon=False)
    fig.tight_layout()
    diagonal = [(v, v, 3) for v in np.arange(0, 101, 1.5)]  # keep labels off the dashed line too
    place_labels(ax, labels, obstacles=points + diagonal, fontsize=8, marker_pt=14)
    style.save(fig, out_svg)


# Figure name (analysis/figure_list.py) -> how to draw it from the rule's input tables and the
# network's fusion groups (the config's ``networks.<network>.groups``).
DRAW = {
    "roofline": lambda t, out, net, g: roofline(t["tidy"], t["kernels"], t["ceilings"], out, net),
    "bandwidth_saving": lambda t, out, net, g: bandwidth_saving(t["tidy"], out, net, t["ceilings"],
                                                                paper_marks(t["paper"]) or None, g),
    "paper_traffic": lambda t, out, net, g: paper_traffic(t["tidy"], t["kernels"], t["paper"], out),
    "tile_tradeoff_measured": lambda t, out, net, g: tile_tradeoff_measured(t["tidy"], out, net, kernels=t["kernels"]),
    "speedup": lambda t, out, net, g: speedup_vs_batch(t["tidy"], out, net),
    "energy": lambda t, out, net, g: energy_per_image(t["tidy"], out, net),
    "occupancy": lambda t, out, net, g: occupancy(t["kernels"], out, net, tidy=t["tidy"]),
    "gpus_side_by_side": lambda t, out, net, g: gpus_side_by_side(t["tidy"], out, net),
    "time_breakdown": lambda t, out, net, g: time_breakdown(t["phases"], out, net, t["tidy"]),
}  # fmt: skip
INPUTS = ("tidy", "kernels", "ceilings", "phases", "paper")


def draw(name: str, out: Path, network: str, tables: Mapping[str, pd.DataFrame],
         groups: Mapping[str, Sequence[str]] | None = None) -> None:  # fmt: skip
    """Draw figure ``name`` from ``tables`` (keys of INPUTS); absent tables give the placeholder.
    ``groups`` maps the network's fusion groups to (first, last) layer (for the traffic floors)."""
    if name not in DRAW:
        raise ValueError(f"unknown measured figure {name!r}; known: {', '.join(DRAW)}")
    DRAW[name]({k: tables.get(k, pd.DataFrame()) for k in INPUTS}, out, network, groups)


if __name__ == "__main__":  # only under Snakemake's script: directive
    import logging

    from analysis.inputs import read_inputs

    sm = snakemake  # noqa: F821
    logging.basicConfig(filename=sm.log[0], level=logging.INFO)
    inputs = read_inputs(dict(sm.input.items()))
    groups = sm.config.get("networks", {}).get(sm.params.network, {}).get("groups")
    for name in sm.output.keys():
        draw(name, Path(sm.output[name]), sm.params.network, inputs, groups)
        logging.info("wrote %s", sm.output[name])
