"""Rule aggregate: every result file (this run and the archives) -> the tidy tables under results/.

``tidy`` (tidy.csv, tidy.parquet): one row per source x gpu x network x variant x batch, read by
analysis/collect.py, derived by analysis/derive.py; ``kernels``, ``ceilings``, ``phases`` and
``provenance`` are the per-kernel, per-GPU, per-phase and per-GPU provenance tables.
"""

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from analysis.collect import (
    KEYS,
    collect,
    collect_ceilings,
    collect_kernels,
    collect_phases,
    collect_provenance,
    save_table,
)
from analysis.derive import derive, derive_kernels
from analysis.rows import sort_rows


def tidy_tables(results_dirs: Iterable[Path], plan_csv: Path | None, archive_dirs: Iterable[Path] = ()) -> dict[str, pd.DataFrame]:
    """The tidy tables, keyed as the rule's outputs: tidy, kernels, ceilings, phases, provenance."""
    results_dirs, archive_dirs = list(results_dirs), list(archive_dirs)
    ceilings = collect_ceilings(results_dirs, archive_dirs)  # each row's compute ceiling comes from here
    return {
        "tidy": sort_rows(derive(collect(results_dirs, plan_csv, archive_dirs), ceilings), KEYS),
        "kernels": derive_kernels(collect_kernels(results_dirs, archive_dirs)),
        "ceilings": ceilings,
        "phases": collect_phases(results_dirs, archive_dirs),
        "provenance": collect_provenance(results_dirs, archive_dirs),
    }


if __name__ == "__main__":  # only under Snakemake's script: directive
    import logging

    sm = snakemake  # noqa: F821
    logging.basicConfig(filename=sm.log[0], level=logging.INFO)
    out = tidy_tables(sm.params.results_dirs, sm.input.plan, sm.params.archive_dirs)
    for key, df in out.items():
        save_table(df, Path(sm.output[key]), Path(sm.output.parquet) if key == "tidy" else None)
    logging.info("tidy table: %d rows (%d model-only)", len(out["tidy"]), int(out["tidy"]["model_only"].sum()))
