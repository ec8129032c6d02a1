"""The short table the workflow prints when it finishes: one line per measured variant x batch."""

from pathlib import Path

import pandas as pd

COLUMNS = {
    "variant": "variant",
    "batch": "batch",
    "us_per_image": "us/image",
    "us_per_image_q1": "q1",
    "us_per_image_q3": "q3",
    "dram_bytes_per_image": "DRAM MB/image",
    "model_dram_bytes_per_image": "model MB/image",
    "speedup_vs_lbl": "x lbl",
    "speedup_vs_vendor": "x vendor",
    "energy_mj_per_image": "mJ/image",
}
MB_COLUMNS = ("dram_bytes_per_image", "model_dram_bytes_per_image")


def summary_table(tidy_csv: str | Path) -> str:
    """This run's measured rows as text; says so plainly when nothing was measured."""
    tidy = pd.read_csv(tidy_csv)
    rows = tidy[(tidy["source"] == "this run") & ~tidy["model_only"].astype(bool)]
    if rows.empty:
        return "No GPU measurements in this run (model-only): see results/model/ and the report."
    table = rows.reindex(columns=list(COLUMNS)).copy()
    for col in MB_COLUMNS:
        table[col] = table[col] / 1e6
    gpu = rows["gpu_name"].dropna().iloc[0] if rows["gpu_name"].notna().any() else rows["gpu"].iloc[0]
    text = table.rename(columns=COLUMNS).to_string(index=False, float_format=lambda v: f"{v:.3g}")
    return f"Measured on {gpu} (medians over CUDA-event repeats; DRAM bytes from ncu range replay):\n{text}"
