"""Archive one GPU run's results into reports/archive/<gpu>-<yyyy-mm-dd>/, and upgrade old archives.

Readers without a GPU then see genuine measurements beside the model, always labelled as archived
(card, date) by analysis/collect.py. Only the small, text result files are kept: JSON and CSV
(plan, model, build reports, verify/time/profile/phases, ceilings, provenance). Cubins and Nsight
Compute reports stay out (large, and rebuilt by rerunning the workflow).

An archive written before result files carried ``schema_version`` (schema 1) is upgraded in place,
once, by :func:`migrate`; analysis reads schema 2 only. Migration adds fields and renames keys, and
never changes a measured number.

    python -m analysis.archive [--results results] [--into reports/archive] [--label run2]
    python -m analysis.archive --migrate reports/archive/<card>-<date>[-<label>] [...]
"""

import argparse
import datetime as dt
import json
import math
import shutil
from pathlib import Path

KEEP_SUFFIXES = (".json", ".csv")
REPO = Path(__file__).resolve().parents[1]


def archive_results(results: Path, into: Path, gpu: str | None = None, date: str | None = None,
                    label: str | None = None) -> Path:  # fmt: skip
    """Copy this run's text results for ``gpu`` (the only GPU directory if None) into
    ``into/<gpu>-<date>`` (``-<label>`` appended for a later run the same day); the date is the
    provenance timestamp's day. Refuses to overwrite. The stages write the current schema, so the
    copy needs no migration."""
    gpus = [p.name for p in results.iterdir() if (p / "provenance.json").exists()]
    if gpu is None:
        if len(gpus) != 1:
            raise SystemExit(f"name the GPU to archive with --gpu; found {gpus or 'none'} under {results}")
        gpu = gpus[0]
    if date is None:
        stamp = json.loads((results / gpu / "provenance.json").read_text()).get("timestamp_utc", "")
        date = stamp[:10] if stamp[:4].isdigit() else dt.date.today().isoformat()
    if label is not None and not label.isalnum():
        raise SystemExit(f"--label must be letters and digits, got {label!r}")
    dest = into / (f"{gpu}-{date}" + (f"-{label}" if label else ""))
    if dest.exists():
        raise SystemExit(f"{dest} exists; archived results are never overwritten (give another run a --label)")
    sources = [results / gpu, results / "build", results / "model", results / "plan.csv"]
    for src in sources:
        files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file()) if src.exists() else []
        for f in files:
            if f.suffix in KEEP_SUFFIXES:
                target = dest / f.relative_to(results)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
    return dest


# ---------------------------------------------------------------- migration: schema 1 -> 2
#
# Everything analysis once knew about older result files lives here, and only here.

RESULT_FILES = ("time.json", "profile.json", "phases.json")  # per b<batch>; verify.json is per variant
# Old spellings -> the one the stages write (pipeline/stages/ceilings.py, provenance.py).
_L2_SIZE_ALIASES = ("l2_cache_bytes", "l2_size_bytes", "datasheet_l2_bytes", "datasheet_l2_cache_bytes")
RENAMED_KEYS = {
    "ceilings.json": {"fp32_flops_per_s": "fp32_flop_per_s", "datasheet_fp32_flops_per_s": "datasheet_fp32_flop_per_s",
                      **dict.fromkeys(_L2_SIZE_ALIASES, "l2_bytes")},
    "provenance.json": dict.fromkeys(_L2_SIZE_ALIASES, "l2_bytes"),
}  # fmt: skip
# Plan columns of the variant's record: written from the record (old plans wrote tile 2 as "2.0").
RECORD_COLUMNS = ("variant", "network", "group", "strategy", "tile", "precision")
# Plan columns added since schema 1 (pipeline/stages/plan.py plan_table).
PLAN_WORK_COLUMNS = ("kernel_padding_macs_per_image", "kernel_counted_flops_per_image")


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1))  # the stages' format: indent 1, no final newline


def _stamp(path: Path, record: dict, extra: dict | None = None) -> bool:
    """Give a result file ``schema_version`` and its record (plus ``extra`` fields); False when it
    already has them. A record field the file states differently is an error, never overwritten."""
    from analysis.collect import SCHEMA_VERSION

    data = _read(path)
    if data.get("schema_version") == SCHEMA_VERSION:
        return False
    for k, v in record.items():
        if k in data and data[k] != v:
            raise ValueError(f"{path}: {k} is {data[k]!r} in the file, but {v!r} by its place in the archive")
    _write(path, {"schema_version": SCHEMA_VERSION, **record, **(extra or {}),
                  **{k: v for k, v in data.items() if k not in record}})  # fmt: skip
    return True


def exact_slots(build: dict) -> bool:
    """Whether a fused build ran exact-width register tiles: builds since EXACT_R record it in their
    defines; those before it (no EXACT_R: the archived runs before h200-2026-11-26-run4) ran the
    coarser widths."""
    return bool((build.get("defines") or {}).get("EXACT_R", 0))


def _plan_groups(archive: Path) -> dict[tuple[str, str], str]:
    """(network, variant) -> fusion group, from the archive's plan.csv."""
    import pandas as pd

    p = archive / "plan.csv"
    if not p.exists():
        return {}
    plan = pd.read_csv(p, dtype=str)
    if "group" not in plan.columns:
        return {}
    return {(n, v): g for n, v, g in zip(plan["network"], plan["variant"], plan["group"])}


def _record(variant: str, network: str | None, groups: dict) -> dict:
    """The record of ``variant`` (fields from its name: the one place archived names are read),
    with the network of its folder and the group of the archive's plan."""
    from kernels.registry import Variant

    v = Variant.parse(variant)
    if network is None:  # a build: the network its plan runs it on, if one
        nets = {n for n, name in groups if name == variant}
        network = nets.pop() if len(nets) == 1 else v.network
    return {**v.record(), "network": network, "group": groups.get((network, variant), v.group)}


def _move_builds(archive: Path, gpu_dir: Path) -> list[Path]:
    """<gpu>/build/<variant>.json (an early layout) -> build/<arch>/<variant>.json beside the GPU dirs."""
    moved = []
    for f in sorted((gpu_dir / "build").glob("*.json")):
        arch = _read(f).get("arch")
        if not arch:
            raise ValueError(f"{f}: a build report without 'arch'; cannot place it under build/<arch>/")
        target = archive / "build" / arch / f.name
        if target.exists() and target.read_text() != f.read_text():
            raise ValueError(f"{f} and {target} differ; resolve by hand")
        target.parent.mkdir(parents=True, exist_ok=True)
        f.replace(target)
        moved.append(target)
    if (gpu_dir / "build").is_dir() and not any((gpu_dir / "build").iterdir()):
        (gpu_dir / "build").rmdir()
    return moved


def _verify_per_variant(variant_dir: Path) -> list[Path]:
    """b<batch>/verify.json (an early layout) -> one verify.json per variant: the worst of them (a
    failure if any failed, else the largest error), copied unchanged; the per-batch files go."""
    per_batch = sorted(variant_dir.glob("b*/verify.json"))
    if not per_batch or (variant_dir / "verify.json").exists():
        return []
    runs = [(_read(p), p) for p in per_batch]
    worst = max(runs, key=lambda r: (not r[0].get("passed", False), r[0].get("rel_l2_error", -math.inf)))
    (variant_dir / "verify.json").write_text(worst[1].read_text())
    for _, p in runs:
        p.unlink()
    return [variant_dir / "verify.json"]


def _rename_keys(path: Path, renamed: dict[str, str]) -> bool:
    """Old key spellings -> current ones; an alias whose current key exists is left as it is."""
    data = _read(path)
    hits = {old: new for old, new in renamed.items() if old in data and new not in data}
    if not hits:
        return False
    _write(path, {hits.get(k, k): v for k, v in data.items()})
    return True


def _archived_work(archive: Path, plan_row, first: str) -> tuple[float, float]:
    """(padding MACs, counted FLOPs) per image of the archived build of a fused variant (a row of
    its plan), as kernels/work.py counts its loops with that build's flags; NaN without a build."""
    from kernels.work import fused_work
    from pipeline.core.networks import load_network
    from pipeline.core.tiles import parse_tile
    from pipeline.model.costs import group_input_shape

    builds = sorted(archive.glob(f"build/*/{plan_row.variant}.json"))
    if not builds:
        return math.nan, math.nan
    build = _read(builds[0])
    defines = build.get("defines") or {}
    shape = group_input_shape(load_network(plan_row.network), first)
    w = fused_work(parse_tile(plan_row.tile), plan_row.strategy, shape.height, shape.width,
                   chunk_rows=defines.get("CHUNK_ROWS"), exact_slots=exact_slots(build),
                   lean_input=defines.get("LEAN_INPUT"))  # fmt: skip
    return float(w.padding_macs), float(w.flops)


def _upgrade_plan(archive: Path) -> bool:
    """plan.csv with the record columns and the model columns of pipeline/stages/plan.py, for the
    archive's own variants and batches; its existing columns keep their values. The executed-work
    columns of fused variants are those of the archived builds (:func:`_archived_work`)."""
    import pandas as pd
    import yaml

    from kernels.registry import GROUP
    from pipeline.core.strategy import FUSED_STRATEGIES
    from pipeline.stages.plan import plan_table

    path = archive / "plan.csv"
    if not path.exists():
        return False
    old = pd.read_csv(path, dtype={"tile": str})
    if "group" not in old.columns:
        old.insert(1, "group", GROUP)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    key = ["network", "variant", "batch"]
    frames = []
    for (network, group), rows in old.groupby(["network", "group"], sort=False):
        if group not in config["networks"].get(network, {}).get("groups", {}):
            raise ValueError(f"{path}: network {network!r} group {group!r} is not in config/config.yaml")
        cfg = {"kernels": {"network": network, "group": group, "batches": sorted(rows["batch"].unique().tolist())},
               "networks": config["networks"], "model": config["model"]}  # fmt: skip
        new = plan_table(cfg, list(dict.fromkeys(rows["variant"])))
        first = config["networks"][network]["groups"][group][0]
        fused = new[new["strategy"].isin([str(s) for s in FUSED_STRATEGIES])]
        for row in fused.drop_duplicates("variant").itertuples():
            new.loc[new["variant"] == row.variant, list(PLAN_WORK_COLUMNS)] = _archived_work(archive, row, first)
        frames.append(new)
    current = pd.concat(frames, ignore_index=True)
    out = old[key].merge(current, on=key, how="left")
    for c in old.columns:  # the model numbers the archive's plan gave stay as they were
        if c not in RECORD_COLUMNS:
            out[c] = old[c].to_numpy()
    out = out[[*current.columns, *[c for c in old.columns if c not in current.columns]]]
    if out.astype(str).equals(old.astype(str)):
        return False
    out.to_csv(path, index=False)
    return True


def migrate(archive_dir: Path) -> list[Path]:
    """Upgrade an archived run in place to the current schema; returns the files it changed.

    Every result JSON (verify, time, profile, phases, build reports) gets ``schema_version`` and
    the record fields (ceilings and provenance: ``schema_version``) (``Variant.parse`` of its folder name, the network from its path, the group
    from the archive's plan); fused build reports get ``exact_slots``; key spellings become the
    stages' (ceilings' ``fp32_flop_per_s``, ``l2_bytes``); per-batch verify files and in-GPU-dir
    build reports move to today's layout; plan.csv gains the record and model columns. Measured
    numbers are never changed. Running it again changes nothing.
    """
    from analysis.collect import gpu_dirs, measurement_dirs
    from pipeline.core.strategy import Strategy

    archive = Path(archive_dir)
    groups = _plan_groups(archive)
    changed: list[Path] = []
    for g in gpu_dirs(archive):
        changed += _move_builds(archive, g)
        for variant_dir in sorted({d.parent for *_, d in measurement_dirs(g)}):
            changed += _verify_per_variant(variant_dir)
        for name, renamed in RENAMED_KEYS.items():  # per-GPU files: no variant record
            if (g / name).exists() and (_rename_keys(g / name, renamed) | _stamp(g / name, {})):
                changed.append(g / name)
        for network, variant, _, d in measurement_dirs(g):
            record = _record(variant, network, groups)
            for f in [d / n for n in RESULT_FILES] + [d.parent / "verify.json"]:
                if f.exists() and _stamp(f, record):
                    changed.append(f)
    for f in sorted(archive.glob("build/*/*.json")):
        record = _record(f.stem, None, groups)
        extra = {"exact_slots": exact_slots(_read(f))} if Strategy(record["strategy"]).fused else {}
        if _stamp(f, record, extra):
            changed.append(f)
    if _upgrade_plan(archive):
        changed.append(archive / "plan.csv")
    return sorted(set(changed))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--into", type=Path, default=Path("reports/archive"))
    ap.add_argument("--gpu")
    ap.add_argument("--date")
    ap.add_argument("--label", help="letters and digits, for a second run on the same card and day")
    ap.add_argument("--migrate", type=Path, nargs="+", metavar="ARCHIVE",
                    help="upgrade these archived runs in place to the current schema (instead of archiving)")
    a = ap.parse_args()
    if a.migrate:
        for archive in a.migrate:
            files = migrate(archive)
            print(f"{archive}: {len(files)} files upgraded")
    else:
        print(archive_results(a.results, a.into, a.gpu, a.date, a.label))
