"""``--launcher gpus``: one job per GPU of this machine at a time.

Each (model, seed) job is a child process ``python -m vpbench.cli run --models M --seed S ... --launcher local``
with ``CUDA_VISIBLE_DEVICES`` set to its GPU (or group of GPUs, with ``--gpus-per-job N``, then under
``torchrun``) and its output in its own log. Ctrl-C or SIGTERM stops the children (they mark their runs
``interrupted``).
"""
from __future__ import annotations

import argparse
import shlex

from vpbench.errors import UserError
from vpbench.launch.base import Launcher, register_launcher
from vpbench.launch.plan import Job, Sweep, plan_jobs
from vpbench.launch.pool import Slot, run_pool


@register_launcher
class GpusLauncher(Launcher):
    name = "gpus"
    help = "one job per GPU of this machine at a time"
    shared = frozenset({"gpus_per_job", "dry_run"})

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:  # noqa: SLF001
            group.add_argument("--gpus", help="--launcher gpus: the GPUs to use, e.g. 0,1,2,3 (default: every visible GPU); "
                                          "an index repeated runs that many jobs on that GPU at once (0,0,1,1)")

    def launch(self, args: argparse.Namespace, run_parser: argparse.ArgumentParser) -> None:
        sweep = plan_jobs(args, run_parser)
        print(f"preset: {sweep.preset}" + ("" if args.preset else " (the jobs' default: --preset to change)"))
        launch_gpus(sweep, args)


def gpu_slots(gpus: str | None, per_job: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each slot: ``--gpus 0,1,2,3`` in groups of ``per_job``. An index given several
    times is that many slots on one GPU (``--gpus 0,0,1,1``: two jobs at a time on each of two GPUs, for small
    models that leave most of a GPU idle); a group of several GPUs must name distinct ones."""
    if gpus:
        ids = [g.strip() for g in gpus.split(",") if g.strip()]
        if not ids or not all(i.isdigit() for i in ids):
            raise UserError(f"--gpus {gpus!r}: expected GPU indices, e.g. 0,1,2,3 (repeat one to run several jobs on "
                            "it: 0,0,1,1)")
    else:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError("--launcher gpus: no GPU is visible on this machine; pass --gpus 0,1,... "
                            "(with --device cpu, CPU processes stand in for them)")
        ids = [str(i) for i in range(count)]
    if len(ids) < per_job:
        raise UserError(f"--gpus-per-job {per_job} needs at least {per_job} GPUs; --gpus gives {len(ids)}")
    groups = [ids[i : i + per_job] for i in range(0, len(ids) - per_job + 1, per_job)]
    if any(len(set(group)) != len(group) for group in groups):
        raise UserError(f"--gpus {gpus!r} with --gpus-per-job {per_job}: a job's GPUs must be distinct; list each "
                        "job's group in turn, e.g. 0,1,0,1 for two jobs on GPUs 0 and 1")
    return [",".join(group) for group in groups]


def launch_gpus(sweep: Sweep, args: argparse.Namespace, *, poll: float = 0.2) -> list[tuple[Job, dict, str]]:
    """Run the sweep's jobs as child processes, at most one per GPU slot at a time; returns the summary rows."""
    slots = gpu_slots(args.gpus, args.gpus_per_job)
    if args.dry_run:
        for job in sweep.jobs:
            print(f"{job.key}: {shlex.join(job.command)}")
        print(f"{len(sweep.jobs)} jobs on GPU slots {', '.join(slots)}; nothing launched (--dry-run)")
        return []
    print(f"launcher gpus: {len(sweep.jobs)} jobs ({sweep.dataset}, preset {sweep.preset}) on "
          f"{len(slots)} slot(s): CUDA_VISIBLE_DEVICES={' | '.join(slots)}; logs in "
          f"{sweep.launcher_dir / 'logs' / sweep.launch_id}", flush=True)
    return run_pool(sweep, [Slot(f"CUDA_VISIBLE_DEVICES={s}", {"CUDA_VISIBLE_DEVICES": s}, {"gpu": s}) for s in slots],
                    "gpus", poll=poll)
