"""The report: ``bench report``'s tables, figures and pages from the run folders found under a results folder.

The run folder is its only input: it reads runs through :mod:`vpbench.store` and names their metrics through
:mod:`vpbench.metrics`, and sets published values beside them from the model and dataset registries. May
import config, metrics, models, datasets, store and the foundation modules; never the harness (a report never
trains or evaluates), the launchers, the diagnostics or the command line.
"""
