"""Archive one GPU run's results into reports/archive/<gpu>-<yyyy-mm-dd>/ (committed with the repo).

Readers without a GPU then see genuine measurements beside the model, always labelled as archived
(card, date) by analysis/aggregate.py. Only the small, text result files are kept: JSON and CSV
(plan, model, build reports, verify/time/profile, ceilings, provenance). Cubins and Nsight Compute
reports stay out (large, and rebuilt by rerunning the workflow).

    python -m analysis.archive [--results results] [--into reports/archive] [--label run2]
"""

import argparse
import datetime as dt
import json
import shutil
from pathlib import Path

KEEP_SUFFIXES = (".json", ".csv")


def archive_results(results: Path, into: Path, gpu: str | None = None, date: str | None = None,
                    label: str | None = None) -> Path:  # fmt: skip
    """Copy this run's text results for ``gpu`` (the only GPU directory if None) into
    ``into/<gpu>-<date>`` (``-<label>`` appended for a later run the same day); the date is the
    provenance timestamp's day. Refuses to overwrite."""
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


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--into", type=Path, default=Path("reports/archive"))
    ap.add_argument("--gpu")
    ap.add_argument("--date")
    ap.add_argument("--label", help="letters and digits, for a second run on the same card and day")
    a = ap.parse_args()
    print(archive_results(a.results, a.into, a.gpu, a.date, a.label))
