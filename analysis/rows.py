"""Which rows a table or figure shows, and in what order.

Order comes from the record columns every row carries (``strategy``, ``tile``, ``precision``), never
from a variant's name: lbl, reuse by tile area, recompute by tile area, vendor last (the registry's
``Variant.rank``); sources this run first, then archives newest first.
"""

from collections.abc import Sequence

import pandas as pd

from analysis.sources import source_newest_first
from kernels.registry import DEFAULT_PRECISION, Variant
from pipeline.core.strategy import Strategy
from pipeline.core.tiles import parse_tile

RECORD_COLUMNS = ["strategy", "tile", "precision"]


def rank(strategy, tile, precision) -> tuple[int, int, int]:
    """Sort key of one variant from its record fields (tile as its label, "4" or "2x7", or empty);
    unknown strategies sort last."""
    try:
        s = Strategy(strategy)
    except ValueError:
        return len(Strategy), 0, 0
    t = parse_tile(tile) if isinstance(tile, str) and tile else None
    p = precision if isinstance(precision, str) and precision else DEFAULT_PRECISION
    return Variant(s, t if s.fused else None, p).rank


def _ranks(df: pd.DataFrame) -> pd.Series:
    cols = df.reindex(columns=RECORD_COLUMNS)
    return pd.Series([rank(*r) for r in cols.itertuples(index=False, name=None)], index=df.index, dtype=object)


def sort_rows(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``df`` sorted by the columns ``by``; ``source`` newest first and ``variant`` by its record's rank."""
    keys = []
    for c in by:
        if c == "source":
            keys.append([source_newest_first(s) for s in df[c]])
        elif c == "variant":
            keys.append(list(zip(_ranks(df), df[c])))
        else:
            keys.append(list(df[c]))
    order = sorted(range(len(df)), key=lambda i: tuple(k[i] for k in keys))
    return df.iloc[order].reset_index(drop=True)


def variant_order(df: pd.DataFrame) -> list[str]:
    """The variants of ``df`` (with its record columns) in the order of every legend."""
    if df is None or df.empty:
        return []
    first = df.drop_duplicates("variant")
    return list(sort_rows(first, ["variant"])["variant"])


def measured(tidy: pd.DataFrame, network: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Rows with a GPU measurement that passed (or did not record) verification; of ``network``
    (one name or several), or of every network without it."""
    if tidy is None or tidy.empty:
        return pd.DataFrame(columns=getattr(tidy, "columns", []))
    df = tidy[~tidy["model_only"].astype(bool)]
    if "verify_passed" in df.columns:
        ok = df["verify_passed"].map(lambda x: x is not False and x != "False").astype(bool)
        df = df.loc[ok]
    if network is not None:
        df = df.loc[df["network"].isin([network] if isinstance(network, str) else list(network))]
    return df


def network_order(df: pd.DataFrame, first: str | None = None) -> list[str]:
    """The networks of ``df``: ``first`` (the figure's own network) first if present, then the
    others by name."""
    nets = sorted(set(df["network"].dropna())) if df is not None and "network" in df else []
    return sorted(nets, key=lambda n: (n != first, n))


def network_variant_order(df: pd.DataFrame, first: str | None = None) -> list[tuple[str, str]]:
    """(network, variant) pairs of ``df`` in legend order: by network (:func:`network_order`), then
    each network's variants by their record's rank. Series of several networks are told apart by
    the pair, never by a variant's name alone."""
    return [(n, v) for n in network_order(df, first) for v in variant_order(df[df["network"] == n])]


def pick_source(df: pd.DataFrame) -> tuple[str, str] | None:
    """(source, gpu) to show: this run if it measured anything, else the newest archive."""
    if df.empty:
        return None
    pairs = df[["source", "gpu"]].drop_duplicates().itertuples(index=False, name=None)
    return sorted(pairs, key=lambda p: (source_newest_first(p[0]), p[1]))[0]
