"""The picture a person checks at a glance: held-out frames, each expert's output and the merged one's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simokit.runtime.overlay import colour_of


def _draw(
    task: str, value: np.ndarray, palette: np.ndarray, vrange: tuple[float, float] | None
) -> np.ndarray:
    colouriser = colour_of(task)
    return colouriser.draw(value, palette, vrange if task == "depth" else None)


def side_by_side(
    images: np.ndarray,
    experts: dict[str, np.ndarray],
    merged: dict[str, np.ndarray],
    palette: np.ndarray,
    path: Path,
) -> Path:
    """A PNG grid: one row per frame; the frame, then per task the expert's and the merged model's output.

    `experts` and `merged` hold outputs in the stored target layout (predict()); depth shares one colour
    range per frame (the expert's 1st-99th percentile), so a difference in colour is a difference in metres.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(experts)
    cols = 1 + 2 * len(tasks)
    h, w = images.shape[1:3]
    size = 2.2
    fig, axes = plt.subplots(
        len(images),
        cols,
        figsize=(size * cols * w / max(h, w) + 0.2, size * len(images) * h / max(h, w) + 0.4),
        squeeze=False,
    )
    for i, image in enumerate(images):
        cells = [("frame", image)]
        for t in tasks:
            vrange = None
            if t == "depth":
                lo, hi = np.percentile(experts[t][i], [1, 99])
                vrange = (float(lo), float(max(hi, lo + 1e-3)))
            cells += [
                (f"{t} expert", _draw(t, experts[t][i], palette, vrange)),
                (f"{t} merged", _draw(t, merged[t][i], palette, vrange)),
            ]
        for j, (title, cell) in enumerate(cells):
            ax = axes[i][j]
            ax.imshow(cell)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
