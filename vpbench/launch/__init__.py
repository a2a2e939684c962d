"""Launchers: how ``bench run`` turns a sweep of (model, seed) runs into processes, and ``bench status``.

Owns the launcher interface and registry (:mod:`.base`), planning a sweep into jobs (:mod:`.plan`), the
record of launched jobs that ``bench status`` reads (:mod:`.jobs`), stopping child processes
(:mod:`.processes`), one file per launcher (``local``, ``gpus``, ``slurm``: a new launcher is one more file
that calls :func:`register_launcher`) and ``bench status`` (:mod:`.status`). May import the harness and
everything below it (config, models, datasets, metrics, store); never the report, the diagnostics or the
command line: ``bench``'s parser is handed to the launchers that need it.
"""
import importlib
import pkgutil

from vpbench.launch.base import Launcher, add_arguments, check_options, get_launcher, launcher_names, register_launcher


def discover() -> None:
    """Import every module of ``vpbench.launch`` (each launcher registers itself on import)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


discover()

__all__ = ["Launcher", "add_arguments", "check_options", "get_launcher", "launcher_names", "register_launcher"]
