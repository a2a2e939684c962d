"""``bench speed --parts sweep``: the quick sweep as it was (stored configurations) beside today's."""
from __future__ import annotations

import pytest

from vpbench.diagnostics import sweep_speed
from vpbench.models import build_model, expand
from vpbench.store import iter_runs


def test_the_sweep_before_is_every_model_of_the_demo_at_its_old_configuration():
    configs = sweep_speed.before_configs()
    assert [c["model"]["name"] for c in configs] == expand("all", "srvp")
    stlstm = next(c for c in configs if c["model"]["name"] == "stlstm")
    assert stlstm["model"]["hidden"] == 32 and stlstm["model"]["patch_size"] == 4
    assert stlstm["train"]["optimizer"] == "rmsprop" and stlstm["train"]["epochs"] == 2
    assert stlstm["dataset"]["train_sequences"] == 800 and stlstm["preset"] == "quick"
    for config in configs:
        build_model(config)  # today's code still builds each as it was configured


def test_the_table_reads_each_sweeps_runs(tiny_results, monkeypatch):
    runs = sweep_speed.runs_of(tiny_results)
    assert set(runs) == {"convgru", "persistence"}
    assert runs["persistence"]["std_ratio"] == pytest.approx(1.0, abs=0.2)  # the last input frame: sharp
    assert 0 <= runs["convgru"]["std_ratio"] < 1.5
    monkeypatch.setattr(sweep_speed, "sweep_now", lambda results, reports: (12.0, 3.0))
    monkeypatch.setattr(sweep_speed, "sweep_before", lambda results: 100.0)
    monkeypatch.setattr(sweep_speed, "runs_of", lambda results: runs)
    lines = sweep_speed.markdown()
    row = next(line for line in lines if line.startswith("| Persistence |"))
    assert row.count("|") == 10
    assert "before 100 s" in lines[-2] and "now 12 s" in lines[-2] and "= 15 s" in lines[-2]
    assert next(iter_runs(tiny_results))  # the fixture is untouched
