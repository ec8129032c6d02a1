"""Output tiles as the model and the kernels name them: a side T (square) or (rows, cols).

Its own module, free of pandas and CuPy, because the kernel registry, the config check and the
model all need the same names: "4" for a 4x4 tile, "2x7" for 2 rows by 7 columns (rows first, as
maps are written: a 231x199 input is 231 rows high).
"""

from __future__ import annotations

Tile = int | tuple[int, int]  # T for a square T x T output tile, or (rows, cols)


def tile_sides(tile: Tile) -> tuple[int, int]:
    """(rows, cols) of an output tile given as T (square) or as (rows, cols)."""
    if isinstance(tile, tuple) and len(tile) == 2:
        return tile[0], tile[1]
    return tile, tile  # type: ignore[return-value]  # validated where it matters


def tile_label(tile: Tile) -> str:
    """Label of a tile: "4" for a square tile, "2x7" (rows x cols, as maps are written) for (2, 7)."""
    rows, cols = tile_sides(tile)
    return str(rows) if rows == cols and not isinstance(tile, tuple) else f"{rows}x{cols}"


def parse_tile(label: str | int) -> Tile:
    """Inverse of ``tile_label``: 4 or "4" -> 4, "2x7" -> (2, 7); ValueError otherwise."""
    text = str(label).strip()
    parts = text.split("x")
    if not all(p.isdigit() for p in parts) or len(parts) not in (1, 2):
        raise ValueError(f"tile {label!r}: give a side T or rows x cols, like 4 or 2x7")
    return int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
