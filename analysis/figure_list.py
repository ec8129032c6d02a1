"""The report's figures and tables, defined once: name, rule, caption, category, labels.

The Snakefile builds each figure rule's ``output:`` and ``rule all``'s targets from this list, and
each rule's script (analysis/model_figures.py, measured_figures.py, tables.py) draws the outputs it
is given by name. Imported by the Snakefile, so it imports nothing heavy.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

FIGURE_DIR = "results/figures"
CAPTION_DIR = "reports"
# rule -> (output path under FIGURE_DIR, with {name}): model figures are drawn per network
RULES = {
    "model_figures": "{{network}}/{name}.svg",
    "measured_figures": "{name}.svg",
    "tables": "{name}.html",
}


@dataclass(frozen=True)
class ReportItem:
    """One figure or table of the report: the output ``name`` of ``rule``, its file, its caption
    (``reports/<caption>``) and where the report files it (``category``, ``subcategory``, ``labels``)."""

    name: str
    rule: str
    caption: str
    category: str
    labels: dict[str, str] = field(default_factory=dict)
    subcategory: str | None = None

    @property
    def path(self) -> str:
        """The output path, with ``{network}`` for per-network figures."""
        return f"{FIGURE_DIR}/" + RULES[self.rule].format(name=self.name)

    def report_args(self) -> dict:
        """Keyword arguments of Snakemake's ``report()`` for this item."""
        args = {"caption": f"{CAPTION_DIR}/{self.caption}", "category": self.category, "labels": dict(self.labels)}
        return args | ({"subcategory": self.subcategory} if self.subcategory else {})


_PER_NETWORK = {"subcategory": "{network}"}
ITEMS: tuple[ReportItem, ...] = (
    ReportItem("dse_pareto", "model_figures", "dse_pareto.rst", "Model",
               {"network": "{network}", "figure": "fusion design space"}, **_PER_NETWORK),
    ReportItem("tile_tradeoff_model", "model_figures", "tile_tradeoff_model.rst", "Model",
               {"network": "{network}", "figure": "tile-size trade-off"}, **_PER_NETWORK),
    ReportItem("pyramid", "model_figures", "pyramid.rst", "Model",
               {"network": "{network}", "figure": "the pyramid of one tile"}, **_PER_NETWORK),
    ReportItem("roofline", "measured_figures", "roofline.rst", "Measured", {"figure": "hierarchical roofline"}),
    ReportItem("bandwidth_saving", "measured_figures", "bandwidth_saving.rst", "Measured",
               {"figure": "DRAM bytes per image"}),
    ReportItem("paper_traffic", "measured_figures", "paper_traffic.rst", "Measured",
               {"figure": "VGG-E traffic and on-chip bytes vs the paper"}),
    ReportItem("tile_tradeoff_measured", "measured_figures", "tile_tradeoff_measured.rst", "Measured",
               {"figure": "tile-size trade-off"}),
    ReportItem("speedup", "measured_figures", "speedup.rst", "Measured", {"figure": "speedup"}),
    ReportItem("energy", "measured_figures", "energy.rst", "Measured", {"figure": "energy per image"}),
    ReportItem("occupancy", "measured_figures", "occupancy.rst", "Measured", {"figure": "occupancy"}),
    ReportItem("gpus_side_by_side", "measured_figures", "gpus_side_by_side.rst", "Measured",
               {"figure": "GPUs side by side"}),
    ReportItem("time_breakdown", "measured_figures", "time_breakdown.rst", "Measured",
               {"figure": "where the time goes"}),
    ReportItem("tidy_table", "tables", "tidy_table.rst", "Tables", {"table": "tidy results"}),
    ReportItem("paper_table", "tables", "paper_comparison.rst", "Model", {"table": "paper vs model"},
               subcategory="paper"),
    ReportItem("paper_sensitivity_table", "tables", "paper_sensitivity.rst", "Model",
               {"table": "paper vs model: sensitivity to conventions"}, subcategory="paper"),
    ReportItem("extra_work_table", "tables", "extra_work.rst", "Measured", {"figure": "executed vs modelled MACs"}),
    ReportItem("provenance_table", "tables", "provenance.rst", "Tables", {"table": "provenance and settings"}),
)  # fmt: skip


def items(rule: str | None = None) -> list[ReportItem]:
    """The items of one rule (all of them without ``rule``), in report order."""
    if rule is not None and rule not in RULES:
        raise ValueError(f"unknown figure rule {rule!r}; known: {', '.join(RULES)}")
    return [i for i in ITEMS if rule is None or i.rule == rule]


def targets(networks: Iterable[str]) -> list[str]:
    """Every figure and table file of the report, per-network ones for each of ``networks``."""
    networks = list(networks)
    out = []
    for i in ITEMS:
        out += [i.path.format(network=n) for n in networks] if "{network}" in i.path else [i.path]
    return out
