"""Where rows come from: this run, or an archived GPU run, and the label every table and figure shows.

Archived results (a GPU run recorded earlier, under ``reports/archive/<card>-<yyyy-mm-dd>[-<label>]/``)
keep a ``source`` of ``"archived <card> <date> [<label>]"`` so no figure can pass them off as the
reader's own run.
"""

import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path

SOURCE_THIS_RUN = "this run"
NO_GPU = "none"  # gpu value of model-only rows when a run has no GPU results at all
ARCHIVE_ROOT = Path(__file__).resolve().parents[1] / "reports" / "archive"
_ARCHIVE_RE = re.compile(r"^(?P<card>.+?)-(?P<date>\d{4}-\d{2}-\d{2})(?:-(?P<label>[A-Za-z0-9]+))?$")


def archive_source(archive_dir: Path) -> str:
    """``"archived <card> <date>"`` from a directory named ``<card>-<yyyy-mm-dd>``, and
    ``"archived <card> <date> <label>"`` from ``<card>-<yyyy-mm-dd>-<label>`` (a later run that day)."""
    m = _ARCHIVE_RE.match(Path(archive_dir).name)
    if not m:
        return f"archived {Path(archive_dir).name} (undated)"
    return f"archived {m['card']} {m['date']}" + (f" {m['label']}" if m["label"] else "")


def sources(results_dirs: Iterable[Path], archive_dirs: Iterable[Path]) -> list[tuple[Path, str]]:
    """(root, source label) for this run's result roots, then every archive."""
    return [(Path(r), SOURCE_THIS_RUN) for r in results_dirs] + [(Path(a), archive_source(a)) for a in archive_dirs]


@functools.lru_cache(maxsize=None)
def archive_time_utc(card: str, date: str, label: str = "") -> str:
    """When the archive ``<card>-<date>[-<label>]`` under :data:`ARCHIVE_ROOT` was measured: the latest
    ``timestamp_utc`` of its ``*/provenance.json`` (ISO 8601, so it sorts as a string); "" when
    there is no such archive or no timestamp."""
    folder = ARCHIVE_ROOT / (f"{card}-{date}" + (f"-{label}" if label else ""))
    times = []
    for p in folder.glob("*/provenance.json"):
        try:
            times.append(str(json.loads(p.read_text()).get("timestamp_utc") or ""))
        except (OSError, ValueError):
            continue
    return max(times, default="")


def source_newest_first(source: str) -> tuple:
    """Sort key: this run, then archives newest first: by date, then within a day by when they were
    measured (:func:`archive_time_utc`; archives without a timestamp after those with one), then
    labelled before unlabelled and by label, then by card."""
    if source == SOURCE_THIS_RUN:
        return (0,)
    parts = source.split(" ")
    card = parts[1] if len(parts) > 1 else source
    date = parts[2] if len(parts) > 2 else ""
    label = parts[3] if len(parts) > 3 else ""
    neg = lambda s: tuple(-ord(c) for c in s)  # noqa: E731 - descending strings
    when = archive_time_utc(card, date, label) if parts[0] == "archived" else ""
    return (1, neg(date), (0, neg(when)) if when else (1,), (0,) if label else (1,), neg(label), card)


def source_title(source: str) -> str:
    """Human label for a source: ``"this run"`` or ``"archived (card, date)"`` for figure titles."""
    if source == SOURCE_THIS_RUN:
        return SOURCE_THIS_RUN
    parts = source.split(" ", 2)
    if len(parts) == 3 and parts[0] == "archived":
        return f"archived ({parts[1]}, {parts[2].replace(' ', ', ', 1)})"
    return source
