"""Aggregation of the measured and modelled results into one tidy table, and the report's figures."""
