"""Stage code run by the Snakefile's rules: networks, model, reference, build, verify, measure."""
