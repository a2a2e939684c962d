"""``bench gpu-check`` (``make gpu-check``): does everything a paper-scale sweep needs work on this GPU?

One table, within minutes on one GPU:

* ``models``: every registered model (``vpbench.models.model_names()``, plug-ins included) is built at the
  ``tiny`` preset, trains a few steps of its recipe (``profiling.train_step_fn``) under bf16 autocast and in
  fp32, its weights must stay finite, and it is evaluated (``evaluate.evaluate``, fp32 as in ``bench run``) on
  the tiny test split;
* ``srvp``: SRVP at the ``paper`` configuration (L=4, M=128, kernel 5, 64x64, batch 8) for ~100 steps in bf16
  and in fp32, with steps per second and peak memory;
* ``compile``: SRVP through ``torch.compile`` (as ``bench run --compile``), the first step (compilation)
  timed apart from the next ones;
* ``ddp``: ``torchrun --nproc_per_node 1``: a one-process NCCL group, the same model wrapped in
  DistributedDataParallel (SyncBatchNorm) for a few steps and an all-reduce, then a tiny ``bench run`` in
  the torchrun environment, whose results must be written.

It exits with code 2 (one line on stderr naming the failed checks) when any check fails. ``--dry-run`` (or
``--device cpu``) runs the same checks on the CPU with far fewer steps (batch 1 for the models, batch 2 for SRVP)
and SRVP at the tiny configuration (gloo instead of NCCL; ``torch.compile`` with the ``aot_eager`` backend,
which traces as inductor does without compiling C++), so that the tests can run it.
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vpbench.errors import UserError

if TYPE_CHECKING:
    import torch

CHECK_PARTS = ("models", "srvp", "compile", "ddp")
PRECISIONS = ("bf16", "fp32")
STEPS_PER_TIMING = 5  # training steps between two looks at the clock (each look waits for the GPU)
DATASET = "mmnist"


@dataclass
class Budget:
    """How much each check does: on a GPU (the real check) or on the CPU (``--dry-run``)."""

    model_steps: int
    model_batch: int | None   # training batch of the per-model check (None: the tiny preset's)
    eval_sequences: int
    srvp_preset: str
    srvp_small: bool          # SRVP at the tiny model configuration (on the CPU)
    srvp_steps: int
    srvp_batch: int | None    # None: the preset's (8)
    srvp_seconds: float       # stop SRVP's timed steps early after this long
    compile_steps: int
    compile_backend: str
    ddp_steps: int
    subprocess_timeout: float


GPU = Budget(model_steps=3, model_batch=None, eval_sequences=8, srvp_preset="paper", srvp_small=False,
             srvp_steps=100, srvp_batch=None, srvp_seconds=60.0, compile_steps=20, compile_backend="inductor",
             ddp_steps=5, subprocess_timeout=240.0)
CPU = Budget(model_steps=1, model_batch=1, eval_sequences=1, srvp_preset="paper", srvp_small=True, srvp_steps=2,
             srvp_batch=2, srvp_seconds=60.0,
             compile_steps=2, compile_backend="aot_eager", ddp_steps=2, subprocess_timeout=300.0)


@dataclass
class Row:
    check: str
    precision: str
    ok: bool
    steps_per_s: float | None = None
    peak_mb: float | None = None
    seconds: float = 0.0
    note: str = ""


# -- the command line -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (the same as --dry-run)")
    parser.add_argument("--dry-run", action="store_true",
                        help="the same checks on the CPU with far fewer steps (SRVP at the tiny configuration)")
    parser.add_argument("--models", default="all",
                        help="comma-separated models for the per-model check (default: every registered model)")
    parser.add_argument("--parts", default=",".join(CHECK_PARTS),
                        help=f"which checks to run (default: {','.join(CHECK_PARTS)})")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--results-dir", help=argparse.SUPPRESS)


def command(args: argparse.Namespace, *, bench: Callable[[list[str]], int]) -> None:
    """``bench gpu-check``: run the checks and print the table; a UserError (exit code 2) for bad options and
    when any check fails. ``bench``: the command line's entry point, which the DDP check runs under torchrun."""
    import torch

    device = torch.device("cpu" if args.dry_run else args.device)
    if args.ddp_worker:
        ddp_worker(device, steps=int(os.environ.get("VPBENCH_GPU_CHECK_STEPS", "2")), results_dir=args.results_dir,
                   bench=bench)
        return
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("CUDA is not available on this machine; --dry-run runs the same checks on the CPU")
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(CHECK_PARTS))
    if unknown or not parts:
        raise UserError(f"--parts {args.parts!r}: choose from {', '.join(CHECK_PARTS)}")
    rows = run_checks(device, parts=parts, models=None if args.models == "all" else args.models)
    print("\n" + format_table(rows, device))
    failed = [r for r in rows if not r.ok]
    if failed:
        raise UserError(f"{len(failed)} of {len(rows)} checks failed: "
                        + ", ".join(f"{r.check} {r.precision}".strip() for r in failed))
    print(f"\ngpu-check: all {len(rows)} checks passed")


# -- the checks -------------------------------------------------------------------------------------------

def run_checks(device: torch.device, *, parts: list[str] | tuple[str, ...] = CHECK_PARTS,
               models: str | None = None, budget: Budget | None = None,
               echo: Callable[[Row], None] | None = None) -> list[Row]:
    """Every check of ``parts``, in order; each row is printed as soon as it is done."""
    from vpbench.models import expand, model_names

    budget = budget or (CPU if device.type == "cpu" else GPU)
    echo = echo or (lambda row: print(_line(row), flush=True))
    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        echo(row)

    if "models" in parts:
        names = model_names() if models is None else expand(models)
        source = _tiny_source()
        for name in names:
            for precision in PRECISIONS:
                add(_guarded(f"model {name}", precision,
                             lambda n=name, p=precision: check_model_precision(n, p, device, budget, source)))
    if "srvp" in parts:
        for precision in PRECISIONS:
            add(_guarded("srvp " + _srvp_label(budget), precision, lambda p=precision: check_srvp(p, device, budget)))
    if "ddp" in parts:
        add(_guarded("ddp torchrun x1", "bf16" if device.type == "cuda" else "fp32",
                     lambda: check_ddp(device, budget)))
    if "compile" in parts:
        add(_guarded("srvp --compile " + _srvp_label(budget), "bf16" if device.type == "cuda" else "fp32",
                     lambda: check_compile(device, budget)))
    return rows


def _guarded(check: str, precision: str, run: Callable[[], Row]) -> Row:
    """The row of ``run``, or a failed row naming the exception it raised."""
    import torch

    started = time.perf_counter()
    try:
        row = run()
    except Exception as err:  # noqa: BLE001  every failure is a row of the table
        text = str(err).strip().splitlines()
        row = Row(check, precision, False, note=f"{type(err).__name__}: {text[0][:160] if text else ''}")
        if os.environ.get("VPBENCH_GPU_CHECK_TRACEBACK"):
            traceback.print_exc()
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    row.check, row.precision = check, precision
    row.seconds = round(time.perf_counter() - started, 1)
    return row


def _srvp_label(budget: Budget) -> str:
    return "(tiny config)" if budget.srvp_small else "(paper config)"


def _tiny_source() -> Any:
    from vpbench import config as cfg
    from vpbench.datasets import build_dataset

    config = cfg.resolve("tiny", "persistence", DATASET)
    return build_dataset(DATASET, config["dataset"], None, 0)


def _runtime(device: torch.device, precision: str, compile_: bool = False) -> Any:
    from vpbench.harness.trainer import Runtime

    return Runtime(device=device, precision=precision, compile=compile_)


def _finite_weights(model: torch.nn.Module) -> None:
    import torch

    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise FloatingPointError(f"non-finite weights after training ({bad[0]}{' ...' if len(bad) > 1 else ''}): "
                                 "a training step diverged")


def _watch_predictions(model: torch.nn.Module) -> None:
    """Fail a training step at once when the model predicts NaN or Inf (the recipe's loss would be NaN)."""
    import torch

    def check(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if module.training and isinstance(output, torch.Tensor) and not torch.isfinite(output).all():
            raise FloatingPointError("non-finite prediction in a training step: the model diverged")

    model.register_forward_hook(check)


def _timed_steps(step: Callable[[], None], runtime: Any, steps: int, seconds: float) -> tuple[int, float]:
    """Run up to ``steps`` steps under the runtime's autocast, timed by the shared timer in runs of
    :data:`STEPS_PER_TIMING`, stopping after the run that passes ``seconds``: (steps done, steps/s)."""
    from vpbench.metrics.cost import call_seconds

    done, elapsed = 0, 0.0
    with runtime.autocast():
        while done < steps and elapsed <= seconds:
            run = min(STEPS_PER_TIMING, steps - done)
            elapsed += call_seconds(lambda: [step() for _ in range(run)], runtime.device)[0]
            done += run
    return done, done / max(elapsed, 1e-9)


def _peak_mb(step: Callable[[], None], runtime: Any) -> float | None:
    """Peak memory of one training step on CUDA (the allocator's high-water mark); None on the CPU."""
    if runtime.device.type != "cuda":
        return None
    from vpbench.metrics.cost import peak_memory_mb

    with runtime.autocast():
        return peak_memory_mb(step, runtime.device)


def check_model_precision(name: str, precision: str, device: torch.device, budget: Budget, source: Any) -> Row:
    """Build ``name`` at the tiny preset, train a few steps in ``precision``, evaluate it (fp32)."""
    import torch

    from vpbench import config as cfg
    from vpbench.harness.evaluate import evaluate
    from vpbench.harness.steps import train_step_fn
    from vpbench.models import build_model

    config = cfg.resolve("tiny", name, DATASET)
    torch.manual_seed(0)
    model = build_model(config).to(device)
    _watch_predictions(model)
    runtime = _runtime(device, precision)
    batch = budget.model_batch or config["train"]["batch_size"]
    step = train_step_fn(model, source.spec, config["train"], device, batch)
    done, rate = _timed_steps(step, runtime, budget.model_steps, seconds=math.inf)
    _finite_weights(model)
    result = evaluate(model, source.split("test")[: budget.eval_sequences], source.spec, device=device,
                      batch_size=config["train"]["eval_batch_size"], desc=f"{name} check")
    summary = result.summary()
    if not all(math.isfinite(v) for v in summary.values()):
        raise FloatingPointError(f"non-finite test metrics {summary}")
    params = sum(p.numel() for p in model.parameters())
    return Row("", precision, True, steps_per_s=rate, note=f"{params:,} params, {done} steps, test MSE "
                                                              f"{summary['mse']:.0f}")


def _srvp_config(budget: Budget) -> dict[str, Any]:
    from vpbench import config as cfg
    from vpbench.models import get_entry

    sets: dict[str, dict[str, Any]] = {"train": {}, "dataset": {}, "model": {}}
    if budget.srvp_small:
        sets["model"] = get_entry("srvp").kwargs_for("tiny")
    return cfg.resolve(budget.srvp_preset, "srvp", DATASET, sets=sets)


def check_srvp(precision: str, device: torch.device, budget: Budget) -> Row:
    """SRVP at the paper configuration (tiny on the CPU): steps/s and peak memory of a training step."""
    import torch

    from vpbench.datasets import dataset_entry
    from vpbench.harness.steps import train_step_fn
    from vpbench.models import build_model

    config = _srvp_config(budget)
    spec = dataset_entry(DATASET).spec(config["dataset"])
    torch.manual_seed(0)
    model = build_model(config).to(device)
    _watch_predictions(model)
    runtime = _runtime(device, precision)
    batch = budget.srvp_batch or config["train"]["batch_size"]
    step = train_step_fn(model, spec, config["train"], device, batch)
    with runtime.autocast():
        step()  # warm-up (cuDNN autotuning, allocator)
    peak = _peak_mb(step, runtime)
    done, rate = _timed_steps(step, runtime, budget.srvp_steps, budget.srvp_seconds)
    _finite_weights(model)
    m = config["model"]
    return Row("", precision, True, steps_per_s=rate, peak_mb=peak,
               note=f"L={m['layers']}, M={m['hidden']}, kernel {m['kernel_size']}, batch {batch}, {done} steps")


def check_compile(device: torch.device, budget: Budget) -> Row:
    """SRVP through torch.compile, as ``bench run --compile`` trains it: compile time, then steps/s."""
    import torch

    from vpbench.datasets import dataset_entry
    from vpbench.harness.steps import train_step_fn
    from vpbench.metrics.cost import call_seconds
    from vpbench.models import build_model

    config = _srvp_config(budget)
    spec = dataset_entry(DATASET).spec(config["dataset"])
    torch.manual_seed(0)
    model = build_model(config).to(device)
    precision = "bf16" if device.type == "cuda" else "fp32"
    runtime = _runtime(device, precision, compile_=True)
    compiled = torch.compile(model, backend=budget.compile_backend)
    batch = budget.srvp_batch or config["train"]["batch_size"]
    step = train_step_fn(compiled, spec, config["train"], device, batch)
    with runtime.autocast():
        compile_s, _ = call_seconds(step, device)
    peak = _peak_mb(step, runtime)
    done, rate = _timed_steps(step, runtime, budget.compile_steps, budget.srvp_seconds)
    _finite_weights(model)
    return Row("", precision, True, steps_per_s=rate, peak_mb=peak,
               note=f"backend {budget.compile_backend}, first step (compilation) {compile_s:.0f}s, then {done} steps")


def check_ddp(device: torch.device, budget: Budget) -> Row:
    """``torchrun --nproc_per_node 1`` of :func:`ddp_worker` (NCCL on CUDA, gloo on the CPU)."""
    with tempfile.TemporaryDirectory(prefix="vpbench-gpu-check-") as tmp:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               "-m", "vpbench.cli", "gpu-check", "--ddp-worker", "--device", str(device), "--results-dir", tmp]
        env = {**os.environ, "VPBENCH_GPU_CHECK_STEPS": str(budget.ddp_steps), "OMP_NUM_THREADS": "1"}
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=budget.subprocess_timeout, env=env)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"torchrun did not finish within {budget.subprocess_timeout:.0f}s") from None
        out = done.stdout + done.stderr
        if done.returncode != 0:
            lines = [ln for ln in out.splitlines() if ln.strip()]
            raise RuntimeError(f"torchrun exited with code {done.returncode}: "
                               f"{lines[-1] if lines else 'no output'}")
        summary = [ln for ln in out.splitlines() if ln.startswith("ddp-worker:")]
        return Row("", "", True, note=summary[-1].removeprefix("ddp-worker: ") if summary else "")


def ddp_worker(device: torch.device, *, steps: int, results_dir: str | None,
               bench: Callable[[list[str]], int]) -> None:
    """Inside torchrun: join a process group, train a tiny convgru under DDP, all-reduce, leave the group;
    then a tiny ``bench run`` in the torchrun environment, whose metrics.json must say ``finished``."""
    import json

    import torch
    import torch.distributed as torch_dist

    from vpbench import config as cfg
    from vpbench.datasets import dataset_entry
    from vpbench.harness.steps import train_step_fn
    from vpbench.models import build_model

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch_dist.init_process_group(backend)
    try:
        config = cfg.resolve("tiny", "convgru", DATASET)
        spec = dataset_entry(DATASET).spec(config["dataset"])
        torch.manual_seed(0)
        model = build_model(config).to(device)
        if device.type == "cuda":  # as vpbench.harness.distributed.wrap does for a group of several processes
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
        step = train_step_fn(net, spec, config["train"], device, config["train"]["batch_size"] // world)
        precision = "bf16" if device.type == "cuda" else "fp32"
        runtime = _runtime(device, precision)
        with runtime.autocast():
            for _ in range(steps):
                step()
        _finite_weights(model)
        value = torch.ones(1, device=device) * (rank + 1)
        torch_dist.all_reduce(value)
        if value.item() != world * (world + 1) / 2:
            raise RuntimeError(f"all_reduce gave {value.item()}")
    finally:
        torch_dist.destroy_process_group()
    results = results_dir or tempfile.mkdtemp(prefix="vpbench-gpu-check-")
    code = bench(["run", "--models", "convgru", "--dataset", DATASET, "--preset", "tiny", "--device", device.type,
                  "--results-dir", results])
    if code != 0:
        raise RuntimeError(f"bench run under torchrun exited with code {code}")
    found = sorted(Path(results).glob(f"{DATASET}/convgru/*/metrics.json"))
    status = json.loads(found[-1].read_text())["status"] if found else "no metrics.json"
    if status != "finished":
        raise RuntimeError(f"bench run under torchrun: {status}")
    if rank == 0:
        print(f"ddp-worker: {backend} group of {world}, DDP convgru {steps} steps, all_reduce ok; tiny bench run "
              f"under torchrun {status}", flush=True)


# -- the table --------------------------------------------------------------------------------------------

def _line(row: Row) -> str:
    rate = "-" if row.steps_per_s is None else f"{row.steps_per_s:.2f} steps/s"
    return f"{'ok  ' if row.ok else 'FAIL'} {row.check} {row.precision} ({row.seconds:.0f}s, {rate}): {row.note}"


def format_table(rows: list[Row], device: torch.device) -> str:
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    lines = [f"gpu-check on {name}, torch {torch.__version__}",
             "| Check | Precision | Result | Steps/s | Peak memory (MB) | Seconds | Note |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        rate = "-" if r.steps_per_s is None else f"{r.steps_per_s:.2f}"
        peak = "-" if r.peak_mb is None else f"{r.peak_mb:,.0f}"
        lines.append(f"| {r.check} | {r.precision or '-'} | {'ok' if r.ok else 'FAIL'} | {rate} | {peak} | "
                     f"{r.seconds:.1f} | {r.note} |")
    return "\n".join(lines)

