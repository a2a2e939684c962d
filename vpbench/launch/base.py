"""The launcher interface and registry: a launcher is a class in one file, registered by name.

A launcher declares its ``bench run`` options (``add_arguments``) and the shared ones it accepts
(``shared``: ``--gpus-per-job``, ``--dry-run``), and runs a sweep (``launch``). ``bench run`` offers every
registered launcher in ``--launcher``; an option of another launcher is an error, never silently ignored.
"""
from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import ClassVar

from vpbench.errors import UserError

DEFAULT = "local"
_LAUNCHERS: dict[str, type[Launcher]] = {}


class Launcher(ABC):
    """One way to run a sweep. ``run_parser`` is ``bench run``'s parser (what a job's command line may hold)."""

    name: ClassVar[str]
    help: ClassVar[str]
    shared: ClassVar[frozenset[str]] = frozenset()  # dests of the shared options it accepts

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:  # noqa: SLF001
        """The launcher's own options (named ``--<name>-...`` or documented as ``--launcher <name>`` ones)."""

    @abstractmethod
    def launch(self, args: argparse.Namespace, run_parser: argparse.ArgumentParser) -> None:
        """Run the sweep that ``args`` (``bench run``'s) describes."""


def register_launcher(cls: type[Launcher]) -> type[Launcher]:
    """Class decorator: make ``cls`` a choice of ``bench run --launcher``."""
    if cls.name in _LAUNCHERS and _LAUNCHERS[cls.name] is not cls:
        raise UserError(f"launcher {cls.name!r} is registered twice")
    _LAUNCHERS[cls.name] = cls
    return cls


def launcher_names() -> list[str]:
    return [DEFAULT, *sorted(n for n in _LAUNCHERS if n != DEFAULT)]


def get_launcher(name: str) -> Launcher:
    if name not in _LAUNCHERS:
        raise UserError(f"unknown launcher {name!r}; choose one of: {', '.join(launcher_names())}")
    return _LAUNCHERS[name]()


def _add_shared(group: argparse._ArgumentGroup) -> dict[str, str]:  # noqa: SLF001
    """The options several launchers accept; returns dest -> option string."""
    group.add_argument("--gpus-per-job", type=int, default=1,
                       help="GPUs per job (default 1); more than 1 runs the job under torchrun (DDP)")
    group.add_argument("--dry-run", action="store_true",
                       help="with --launcher gpus or slurm: print the jobs' commands (and the sbatch script) "
                            "and launch nothing")
    return {"gpus_per_job": "--gpus-per-job", "dry_run": "--dry-run"}


def add_arguments(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """The launcher options of ``bench run``; returns which launchers accept each option's dest."""
    group = parser.add_argument_group("launchers (a sweep of model x seed jobs)")
    names = launcher_names()
    group.add_argument("--launcher", choices=names, default=DEFAULT,
                       help="; ".join(f"{n}: {_LAUNCHERS[n].help}" for n in names) + f" (default {DEFAULT})")
    owners: dict[str, list[str]] = {}
    for name in names:
        before = {a.dest for a in group._group_actions}  # noqa: SLF001
        _LAUNCHERS[name].add_arguments(group)
        for action in group._group_actions:  # noqa: SLF001
            if action.dest not in before:
                owners[action.dest] = [name]
    for dest in _add_shared(group):
        owners[dest] = [n for n in names if dest in _LAUNCHERS[n].shared]
    return owners


def launcher_dests() -> set[str]:
    """Every option dest of the launchers (never passed on to a job's own ``bench run``)."""
    return set(add_arguments(argparse.ArgumentParser(add_help=False))) | {"launcher"}


def check_options(args: argparse.Namespace) -> None:
    """An option of another launcher than ``args.launcher`` given anyway is an error."""
    parser = argparse.ArgumentParser(add_help=False)
    owners = add_arguments(parser)
    for action in parser._actions:  # noqa: SLF001
        accepted = owners.get(action.dest)
        if accepted is None or args.launcher in accepted:
            continue
        if getattr(args, action.dest, action.default) != action.default:
            choices = " or ".join(f"--launcher {n}" for n in accepted)
            raise UserError(f"{max(action.option_strings, key=len)} is an option of {choices}; add {choices}")
