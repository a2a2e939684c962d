"""The sample grid's rows: every label fits the figure (long ones on two lines)."""
from __future__ import annotations

import numpy as np

from vpbench.report import figures
from vpbench.report.figures import row_label, sample_grid


def test_long_row_labels_break_before_their_parenthesis_and_short_ones_stay():
    assert row_label("MCVD (best of K=4)") == "MCVD\n(best of K=4)"
    assert row_label("Ground truth") == "Ground truth" and row_label("ConvLSTM (a)") == "ConvLSTM (a)"
    assert row_label("Earthformer") == "Earthformer"


def test_the_grid_draws_the_stochastic_models_label_on_two_lines(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, formats: drawn.append(fig))
    frames = np.zeros((4, 1, 8, 8), np.uint8)
    sample_grid(frames, frames, [("MCVD (best of K=4)", frames)], tmp_path / "grid", "t")
    labels = [ax.get_ylabel() for ax in drawn[0].axes]
    assert labels == ["Inputs", "Ground truth", "MCVD\n(best of K=4)", "|GT − P|"]
