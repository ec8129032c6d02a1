"""Rule ``model``: a network's pyramid table and its fusion design space, as CSV.

The numbers come from :mod:`pipeline.model.costs` and :mod:`pipeline.model.dse`; this module only
writes them where the Snakefile asks.
"""

import logging

from pipeline.model.costs import write_model_table
from pipeline.model.dse import write_dse

if __name__ == "__main__":  # only under Snakemake's script: directive
    logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
    net_name, spec = snakemake.wildcards.network, snakemake.params.spec  # noqa: F821
    bpv = int(snakemake.params.bytes_per_value)  # noqa: F821
    out = snakemake.output  # noqa: F821
    table = write_model_table(net_name, spec["groups"], spec["tile_sizes"], out.pyramids, bpv)
    dse = write_dse(net_name, out.dse, bpv)
    logging.info("%s: %d model rows, %d partitions", net_name, len(table), len(dse))
