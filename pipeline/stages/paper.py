"""Rule ``paper``: the paper's figures (reports/paper_figures.yaml) beside the model's, as CSV."""

import logging

from pipeline.model.paper import write_paper_comparison

if __name__ == "__main__":  # only under Snakemake's script: directive
    logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
    table = write_paper_comparison(snakemake.output.csv, snakemake.input.figures)  # noqa: F821
    logging.info("%d comparison rows; best per figure:\n%s", len(table),
                 table[table["best"]][["figure", "ratio_model_to_paper", "convention"]].to_string())  # fmt: skip
