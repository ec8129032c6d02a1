"""Open Snakemake's HTML report in headless Chromium: it must load without script errors, show the
report's categories and results, and leave a screenshot for a person to look at.

Two reports are checked. ``mini_report`` is a tiny workflow written here that puts this package's
SVG figures, HTML tables and captions into a report (so the browser path is tested even before the
main Snakefile exists). ``project_report`` runs the project's Snakefile on tests/data/config.yaml
(CPU only: model figures and placeholders) and skips while either file is missing.
Chromium is the Debian package ``chromium``; the tests skip with the reason when it is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "results_fixture"
CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and Path(p).exists()), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
# Console lines Chromium prints for page errors with --enable-logging=stderr.
SCRIPT_ERROR = re.compile(r"Uncaught|:ERROR:CONSOLE|CONSOLE\(\d+\)\].*(Error|error)")


def smk(*args: str, cwd: Path, snakefile: Path) -> subprocess.CompletedProcess:
    """Snakemake as a subprocess, with the repository importable (``analysis``, ``pipeline``)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


def chromium(html: Path, tmp: Path, *mode: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on a local file; ``mode`` is --dump-dom or --screenshot=<png>."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp / 'chromium-profile'}",
             "--enable-logging=stderr", "--v=0", "--window-size=1400,1000", "--virtual-time-budget=5000"]
    return subprocess.run([CHROMIUM, *flags, *mode, html.as_uri()], capture_output=True, text=True, timeout=180)


def check_in_browser(report: Path, tmp: Path, expect: list[str]) -> str:
    """Load the report, assert no script error and that ``expect`` strings are in the rendered DOM."""
    dom = chromium(report, tmp, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    errors = [l for l in dom.stderr.splitlines() if SCRIPT_ERROR.search(l)]
    assert not errors, "script errors in the report:\n" + "\n".join(errors[:10])
    for text in expect:
        assert text in dom.stdout, f"{text!r} not in the rendered report"
    shot = tmp / f"{report.stem}.png"
    r = chromium(report, tmp, f"--screenshot={shot}")
    assert r.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    out = os.environ.get("REPORT_SCREENSHOT_DIR")  # CI keeps the screenshot as an artifact
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(out) / shot.name)
    return dom.stdout


MINI_SNAKEFILE = textwrap.dedent('''
    from pathlib import Path
    import pandas as pd
    from analysis.aggregate import tidy_tables
    from analysis.inputs import read_paper_comparison
    from analysis.measured_figures import draw
    from analysis.tables import tidy_for_report, write_report_table

    FIXTURE = Path(config["fixture"])
    report: "{root}/reports/workflow.rst"

    rule all:
        input: "fig/bandwidth_saving.svg", "fig/speedup.svg", "tables/tidy.html"

    def figure(name, output):
        res, arch = [FIXTURE], [FIXTURE / "archive" / "synthgpu-2026-11-20"]
        t = {{**tidy_tables(res, FIXTURE / "plan.csv", arch),
              "paper": read_paper_comparison(FIXTURE / "model" / "paper_comparison.csv")}}
        draw(name, Path(output), "alexnet", t)

    rule bandwidth_saving:  # caption= takes no wildcards: one rule per captioned figure
        output:
            report("fig/bandwidth_saving.svg", caption="{root}/reports/bandwidth_saving.rst", category="Measured",
                   labels={{"figure": "DRAM traffic"}}),
        run:
            figure("bandwidth_saving", output[0])

    rule speedup:
        output:
            report("fig/speedup.svg", caption="{root}/reports/speedup.rst", category="Measured",
                   labels={{"figure": "speedup"}}),
        run:
            figure("speedup", output[0])

    rule table:
        output:
            report("tables/tidy.html", caption="{root}/reports/tidy_table.rst", category="Tables",
                   labels={{"table": "tidy"}}),
        run:
            t = tidy_tables([FIXTURE], FIXTURE / "plan.csv", [])["tidy"]
            write_report_table(tidy_for_report(t), Path(output[0]), "SYNTHETIC FIXTURE table")
''')


@pytest.fixture(scope="module")
def mini_report(tmp_path_factory) -> Path:
    """A report built from the SYNTHETIC FIXTURE by a tiny workflow (never the project's report)."""
    tmp = tmp_path_factory.mktemp("mini_report")
    snakefile = tmp / "Snakefile"
    snakefile.write_text(MINI_SNAKEFILE.format(root=ROOT))
    cfg = tmp / "config.yaml"
    cfg.write_text(f"fixture: {FIXTURE}\nkernels: {{network: alexnet, group: front, batches: [1, 16, 128]}}\n")
    env_args = ("--configfile", str(cfg), "--cores", "1")
    r = smk(*env_args, cwd=tmp, snakefile=snakefile)
    assert r.returncode == 0, r.stderr[-3000:]
    r = smk(*env_args, "--report", "report.html", cwd=tmp, snakefile=snakefile)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "report.html"


@pytest.fixture(scope="module")
def project_report(tmp_path_factory) -> Path:
    """The project's report from its Snakefile on tests/data/config.yaml (a CPU-only run)."""
    snakefile, cfg = ROOT / "Snakefile", ROOT / "tests" / "data" / "config.yaml"
    if not snakefile.exists() or not cfg.exists():
        pytest.skip("Snakefile or tests/data/config.yaml not written yet")
    tmp = tmp_path_factory.mktemp("project_report")
    args = ("-d", str(tmp), "--configfile", str(cfg), "--cores", "2")
    r = smk(*args, cwd=tmp, snakefile=snakefile)
    assert r.returncode == 0, r.stderr[-3000:]
    r = smk(*args, "--report", str(tmp / "report.html"), cwd=tmp, snakefile=snakefile)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "report.html"


def test_mini_report_embeds_figures_and_table(mini_report):
    html = mini_report.read_text()
    assert "image/svg+xml" in html and "text/html" in html  # results embedded as data URIs
    assert mini_report.stat().st_size < 20_000_000


@needs_chromium
def test_mini_report_renders_without_script_errors(mini_report, tmp_path):
    dom = check_in_browser(mini_report, tmp_path, ["Measured", "Tables"])
    assert "<script" in dom  # the React app ran and rendered its navigation


@needs_chromium
def test_project_report_renders_without_script_errors(project_report, tmp_path):
    check_in_browser(project_report, tmp_path, ["Workflow"])


@needs_chromium
def test_error_detection_catches_a_broken_page(tmp_path):
    """The console check must see a script error, or the two tests above prove nothing."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><p>x</p><script>undefined_function_here()</script></body></html>")
    with pytest.raises(AssertionError, match="script errors"):
        check_in_browser(page, tmp_path, [])
