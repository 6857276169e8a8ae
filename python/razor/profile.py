"""The retrieval-head profile as numpy arrays (RazorAttention §1: induction and echo scores per layer and head)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict

import numpy as np


@dataclass
class HeadProfile:
    """Scores are mean attention mass in [0, 1].

    kv_induction, kv_echo: float32 [n_layers, n_kv_heads] (max over each KV head's query heads);
    q_induction, q_echo: float32 [n_layers, n_heads]; retrieval, by_induction, by_echo: int32 [k, 2] rows of
    (layer, kv_head), the heads razor keeps whole (retrieval = by_induction ∪ by_echo)."""

    kv_induction: np.ndarray
    kv_echo: np.ndarray
    q_induction: np.ndarray
    q_echo: np.ndarray
    retrieval: np.ndarray
    by_induction: np.ndarray
    by_echo: np.ndarray
    params: Dict[str, Any] = field(default_factory=dict)
    model: Dict[str, Any] = field(default_factory=dict)
    json: str = field(default="", repr=False)

    @classmethod
    def _from_engine(cls, d: Dict[str, Any]) -> "HeadProfile":
        return cls(**d)

    @property
    def retrieval_mask(self) -> np.ndarray:
        """bool [n_layers, n_kv_heads]: True where razor keeps the head's whole cache."""
        mask = np.zeros(self.kv_induction.shape, dtype=bool)
        if len(self.retrieval):
            mask[self.retrieval[:, 0], self.retrieval[:, 1]] = True
        return mask

    def save(self, path: str, overwrite: bool = False) -> None:
        """Writes the versioned JSON the CLI reads (razor run --profile PATH). An existing file is replaced only
        with overwrite=True."""
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.json)
        os.replace(tmp, path)

    def plot(self, score: str = "induction", ax=None, path: str | None = None):
        """Heatmap of the KV heads' scores (layers down, KV heads across), retrieval heads outlined. Needs
        matplotlib (pip install razor[plot]). Returns the matplotlib Axes; writes a PNG when path is given."""
        if score not in ("induction", "echo"):
            raise ValueError(f"score={score!r}: expected 'induction' or 'echo'")
        try:
            import matplotlib

            if ax is None and path is not None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from matplotlib.patches import Rectangle
        except ImportError as e:  # pragma: no cover - exercised only without matplotlib
            raise ImportError("HeadProfile.plot needs matplotlib: pip install matplotlib") from e
        values = self.kv_induction if score == "induction" else self.kv_echo
        if ax is None:
            height = max(3.0, 0.18 * values.shape[0] + 1.5)
            _, ax = plt.subplots(figsize=(max(4.0, 0.5 * values.shape[1] + 2.5), height))
        image = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
        for layer, head in self.retrieval:
            ax.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
        ax.set_xlabel("KV head")
        ax.set_ylabel("layer")
        name = self.model.get("name") or self.model.get("architecture", "")
        ax.set_title(f"{name}: {score} score ({len(self.retrieval)} retrieval heads outlined)")
        ax.figure.colorbar(image, ax=ax, label="attention mass")
        if path is not None:
            ax.figure.savefig(path, dpi=120, bbox_inches="tight")
        return ax
