"""Export plots: the tidy data behind each chart (``<name>.csv``, for DVC plots) and a PNG.

:func:`plot_data` is pure (frames in, frames out); :func:`render_plots` writes both files per
plot. Every chart renders something readable on an empty table: a centred note says why.
Matplotlib is driven through ``Figure`` objects (Agg canvas), never pyplot's global state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from autodata.io import atomic_path
from autodata.schemas import DECISIONS

PLOTS = ("scores", "gap", "rounds_per_accepted", "rejections")
NO_ACCEPTED = "no accepted examples"


def _histogram(series: dict[str, pl.Series], low: float, high: float, bins: int) -> pl.DataFrame:
    edges = np.linspace(low, high, bins + 1).round(6)
    counts = {
        name: np.histogram(s.drop_nulls().to_numpy(), bins=edges)[0].astype(np.int64)
        for name, s in series.items()
    }
    return pl.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], **counts})


def plot_data(accepted: pl.DataFrame, rounds: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The tidy table behind each plot in :data:`PLOTS`, keyed by plot name."""
    used = accepted["rounds_used"].drop_nulls().value_counts().sort("rounds_used")
    decisions = rounds["decision"].value_counts()
    counts = dict(zip(decisions["decision"], decisions["count"], strict=True))
    rejected = [d for d in DECISIONS if d != "accepted"]
    return {
        "scores": _histogram(
            {"weak": rounds["weak_mean"], "strong": rounds["strong_mean"]}, 0.0, 1.0, 10
        ),
        "gap": _histogram({"rounds": rounds["gap"], "accepted": accepted["gap"]}, -1.0, 1.0, 20),
        "rounds_per_accepted": used.rename({"count": "accepted"}).cast({"accepted": pl.Int64}),
        "rejections": pl.DataFrame(
            {"decision": rejected, "rounds": [counts.get(d, 0) for d in rejected]},
            schema={"decision": pl.String, "rounds": pl.Int64},
        ),
    }


def render_plots(accepted: pl.DataFrame, rounds: pl.DataFrame, plots_dir: Path) -> dict[str, Path]:
    """Write ``<name>.png`` and ``<name>.csv`` for every plot; return the PNG paths by name."""
    drawers = {
        "scores": _draw_scores,
        "gap": _draw_gap,
        "rounds_per_accepted": _draw_rounds,
        "rejections": _draw_rejections,
    }
    written = {}
    for name, data in plot_data(accepted, rounds).items():
        with atomic_path(plots_dir / f"{name}.csv") as tmp:
            data.write_csv(tmp)
        written[name] = _save(drawers[name], data, plots_dir / f"{name}.png")
    return written


def _save(draw: Any, data: pl.DataFrame, target: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    draw(fig.subplots(), data)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return target


def _note(ax: Any, text: str, y: float = 0.5) -> None:
    ax.text(
        0.5, y, text, ha="center", va="center", transform=ax.transAxes, fontsize=12, color="0.35"
    )


def _nothing(ax: Any, text: str) -> None:
    """An empty chart: the title, the axis labels and a centred note saying why."""
    _note(ax, text)
    ax.set_xticks([])
    ax.set_yticks([])


def _integer_axis(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _bars(ax: Any, data: pl.DataFrame, columns: dict[str, str]) -> None:
    width = float(data["bin_end"][0] - data["bin_start"][0])
    for column, label in columns.items():
        ax.bar(data["bin_start"], data[column], width=width, align="edge", alpha=0.55, label=label)
    ax.set_ylabel("count")
    _integer_axis(ax.yaxis)
    ax.legend()


def _draw_scores(ax: Any, data: pl.DataFrame) -> None:
    ax.set_title("Weak vs strong mean score, all rounds")
    ax.set_xlabel("mean rubric score")
    if int(data["weak"].sum()) + int(data["strong"].sum()) == 0:
        _nothing(ax, "no scored rounds")
        return
    _bars(ax, data, {"weak": "weak solver", "strong": "strong solver"})


def _draw_gap(ax: Any, data: pl.DataFrame) -> None:
    ax.set_title("Gap = strong mean - weak mean")
    ax.set_xlabel("gap")
    if data["rounds"].sum() == 0:
        _nothing(ax, "no round reached the strong solver")
        return
    _bars(ax, data, {"rounds": "all rounds with a strong score", "accepted": "accepted"})
    if data["accepted"].sum() == 0:
        _note(ax, NO_ACCEPTED, y=0.85)


def _draw_rounds(ax: Any, data: pl.DataFrame) -> None:
    ax.set_title("Rounds used per accepted example")
    ax.set_xlabel("rounds used")
    ax.set_ylabel("accepted examples")
    if data.is_empty():
        _nothing(ax, NO_ACCEPTED)
        return
    ax.bar(data["rounds_used"], data["accepted"], color="tab:green")
    ax.set_xticks(data["rounds_used"].to_list())
    _integer_axis(ax.yaxis)


def _draw_rejections(ax: Any, data: pl.DataFrame) -> None:
    ax.set_title("Rounds not accepted, by decision")
    ax.set_xlabel("rounds")
    if data["rounds"].sum() == 0:
        _nothing(ax, "no rejected rounds")
        return
    ax.barh(data["decision"], data["rounds"], color="tab:red")
    ax.invert_yaxis()
    _integer_axis(ax.xaxis)
