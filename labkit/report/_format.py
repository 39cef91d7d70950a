"""The comparison table as a terminal table (rich), CSV, Markdown or JSON."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["format_table", "shown_value"]

Format = Literal["table", "csv", "md", "json"]


def _number(value: float) -> str:
    if value == 0 or (1e-3 <= abs(value) < 1e5):
        return f"{value:.4g}"
    return f"{value:.3e}"


def shown_value(row: Any, column: str) -> str:
    """A cell as people read it: ``0.956 ± 0.004 (3)`` for a metric of a group of runs."""
    import pandas as pd

    value = row[column]
    if isinstance(value, pd.Timestamp):
        return "" if pd.isna(value) else value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if column == "duration_s":
            return f"{value / 60:.1f} min" if value >= 60 else f"{value:.0f} s"
        if column in ("gpu_hours", "gpu_hours_idle"):
            return f"{value:.2f}"
        if column == "gpu_util":  # the mean GPU utilisation of a run (of a group: the mean of means)
            return f"{value:.0f} %"
        std = row.get(f"{column}_std") if hasattr(row, "get") else None
        n = int(row.get("n", 1)) if hasattr(row, "get") else 1
        if std is not None and isinstance(std, float) and not math.isnan(std) and n > 1:
            return f"{_number(value)} ± {_number(std)} ({n})"
        return _number(value)
    if column in ("run_id", "parent"):  # MLflow ids (or run keys): 8 characters tell them apart
        ids = str(value).split()
        return ids[0][:8] + (f" +{len(ids) - 1}" if len(ids) > 1 else "")
    return "" if value is None else str(value)


def _display_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if not c.endswith("_std") and c != "n"]


def format_table(frame: pd.DataFrame, fmt: Format, *, title: str = "") -> str:
    """``frame`` from :func:`~labkit.report._table.compare_frame` as text in ``fmt``.

    ``csv`` and ``json`` keep every column (``<metric>_std``, ``n``, full run ids, ISO times) for
    scripts; ``table`` and ``md`` show ``mean ± std (n)`` for people."""
    if fmt == "csv":
        return str(frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ"))
    if fmt == "json":
        return str(frame.to_json(orient="records", date_format="iso", indent=1))
    columns = _display_columns(frame)
    headers = [c.removeprefix("params.") for c in columns]
    cells = [[shown_value(row, c) for c in columns] for _, row in frame.iterrows()]
    if fmt == "md":
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, show_lines=False)
    for header, column in zip(headers, columns, strict=True):
        text = ("run_id", "parent", "experiment", "user", "start", "status")
        numeric = column not in text and not column.startswith("params.")
        table.add_column(header, justify="right" if numeric else "left", overflow="fold")
    for row in cells:
        table.add_row(*row)
    buffer = StringIO()
    import shutil

    width = max(100, shutil.get_terminal_size((200, 40)).columns)
    Console(file=buffer, width=width, force_terminal=False).print(table)
    return buffer.getvalue()
