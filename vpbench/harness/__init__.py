"""The harness: training and evaluating one model on one dataset into its run folder, the same for every model.

Owns the sweep runner (``bench run``'s work in one process), the recipe-driven training loop, optimisers and
schedules, multi-process training (DDP), evaluation into per-frame metrics, re-evaluating a finished run
(``bench eval``), predicting frames a user gives (``bench predict``) and the experiment trackers a run also
writes to (``loggers/``, ``bench run --logger``). It never knows which model it runs.
May import config, metrics, models, datasets, store and the foundation modules; never the report, the
launchers, the diagnostics or the command line.
"""
