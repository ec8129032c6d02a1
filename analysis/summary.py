"""The short table the workflow prints when it finishes: one line per measured variant x batch."""

from pathlib import Path

from analysis.inputs import read_table
from analysis.rows import RECORD_COLUMNS, sort_rows

# One block of rows per network and fusion group (the tidy table's order); "x own lbl" is lbl of the
# same network, group, precision and kernel family, "x best vendor" the fastest PyTorch anchor of the
# same network, group and precision (analysis/derive.py).
COLUMNS = {
    "network": "network",
    "group": "group",
    "variant": "variant",
    "batch": "batch",
    "us_per_image": "us/image",
    "us_per_image_q1": "q1",
    "us_per_image_q3": "q3",
    "dram_bytes_per_image": "DRAM MB/image",
    "model_dram_bytes_per_image": "model MB/image",
    "speedup_vs_lbl": "x own lbl",
    "speedup_vs_vendor": "x best vendor",
    "speedup_vs_cudnn_convs_alone": "x cuDNN convs",
    "pct_of_compute_ceiling": "% compute ceiling",
    "energy_mj_per_image": "mJ/image",
}
CONVS_ALONE_HEAD = ("cuDNN's convolutions alone (vendor-cl: channels-last, cudnn.benchmark, conv + bias, no ReLU; "
                    "us/image).\nTheir sum is a lower bound on any layer-by-layer pass built from cuDNN's "
                    "convolutions (\"x cuDNN convs\" above: >1 beats it):")
NOTES = ("x cuDNN convs: cuDNN's convolutions alone (listed below), summed, at the variant's precision and batch,\n"
         "over the variant's time. % compute ceiling: useful FLOPs (model) per second over the measured peak of the\n"
         "variant's precision (FP32 FFMA; TF32/FP16/BF16 tensor-core mma.sync).")
MB_COLUMNS = ("dram_bytes_per_image", "model_dram_bytes_per_image")


def summary_table(tidy_csv: str | Path) -> str:
    """This run's measured rows as text; says so plainly when nothing was measured."""
    tidy = read_table(tidy_csv)
    rows = tidy[(tidy["source"] == "this run") & ~tidy["model_only"].astype(bool)]
    if rows.empty:
        return "No GPU measurements in this run (model-only): see results/model/ and the report."
    table = rows.reindex(columns=list(COLUMNS)).copy()
    for col in MB_COLUMNS:
        table[col] = table[col] / 1e6
    gpu = rows["gpu_name"].dropna().iloc[0] if rows["gpu_name"].notna().any() else rows["gpu"].iloc[0]
    text = table.rename(columns=COLUMNS).to_string(index=False, float_format=lambda v: f"{v:.3g}")
    out = f"Measured on {gpu} (medians over CUDA-event repeats; DRAM bytes from ncu range replay):\n{text}\n{NOTES}"
    sections = [convs_alone_lines(rows), phases_table(Path(tidy_csv).with_name("tidy_phases.csv"))]
    return "\n\n".join([out, *(sec for sec in sections if sec)])


def convs_alone_lines(rows) -> str:
    """Each precision and batch whose channels-last anchor timed its convolutions alone: each one,
    and their sum; "" when none did (no torch, or results from before the measurement)."""
    if "convs_alone_us_per_image" not in rows:
        return ""
    d = rows.dropna(subset=["convs_alone_us_per_image"])
    if d.empty:
        return ""
    lines = [CONVS_ALONE_HEAD]
    for _, r in sort_rows(d, ["variant", "batch"]).iterrows():
        parts = " + ".join(p.replace(":", " ") for p in str(r["convs_alone_by_layer"]).split(";"))
        lines.append(f"  {r['variant']} b{r['batch']}: {parts} = {r['convs_alone_us_per_image']:.3g}")
    return "\n".join(lines)


def phases_table(tidy_phases_csv: str | Path) -> str:
    """Where this run's time goes: conv1, conv2 and everything else in us/image per variant."""
    path = Path(tidy_phases_csv)
    if not path.exists():
        return ""
    ph = read_table(path)
    ph = ph[ph["source"] == "this run"]
    if ph.empty:
        return ""
    ph = ph.assign(part=ph["phase"].where(ph["phase"].isin(["conv1", "conv2"]), "other"),
                   tile=ph["tile"].fillna(""), precision=ph["precision"].fillna(""))  # groupby drops NaN keys
    ph = ph.assign(network=ph["network"].fillna(""))
    index = ["network", "variant", "batch", *RECORD_COLUMNS]
    t = ph.pivot_table(index=index, columns="part", values="us_per_image", aggfunc="sum")
    t = t.reindex(columns=["conv1", "conv2", "other"]).fillna(0.0)
    t["total"] = t.sum(axis=1)
    t = sort_rows(t.reset_index(), ["network", "variant", "batch"]).drop(columns=RECORD_COLUMNS)
    text = t.to_string(index=False, float_format=lambda v: f"{v:.3g}")
    return "Where the time goes (us/image; phases stage, scaled to the timed medians):\n" + text
