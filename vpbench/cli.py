"""The ``bench`` command line (also ``python -m vpbench.cli``)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from vpbench import launch, status
from vpbench.benchmarks import gpu_check
from vpbench.errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


PRESET_HELP = ("the scale: full (paper), quick or tiny, or a preset name (see `bench list`); default: full on CUDA, "
               "quick on CPU")
PROTOCOL_HELP = "srvp (the SRVP paper's; default) or openstl (OpenSTL's benchmark)"


def _add_preset(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--preset", default=default, help=PRESET_HELP if default is None else f"as for run (default: {default})")
    p.add_argument("--protocol", help=PROTOCOL_HELP)


def _add_common(p: argparse.ArgumentParser, *, models: bool = True) -> None:
    if models:
        p.add_argument("--models", required=True,
                       help="comma-separated model names, groups (all, paper, rnn, ablation, openstl) or module:factory")
    p.add_argument("--dataset", required=True, help="dataset name or module:builder (see `bench list`)")
    _add_preset(p)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a preset value, e.g. train.lr=1e-4 or model.hidden=64 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description="vpbench: train, evaluate and compare video prediction models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="train and evaluate models, one run folder each")
    _add_common(run)
    run.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    seeds.add_argument("--seeds", help="several seeds, each model trained once per seed: 0,1,2 or a range 0-2")
    run.add_argument("--data-dir", help="folder with the dataset's files (optional for Moving MNIST)")
    run.add_argument("--results-dir", default="results", help="where run folders go (default: results)")
    run.add_argument("--resume", action="store_true",
                     help="continue the newest unfinished run of each model (same preset, seed and options); "
                          "skip finished ones")
    run.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                     help="training precision (default auto: bf16 autocast on CUDA, fp32 on CPU); "
                          "evaluation is always fp32")
    run.add_argument("--compile", action="store_true", help="train through torch.compile")
    launch.add_arguments(run)

    status.add_arguments(sub.add_parser("status", help="where a sweep stands: one line per run and per job not "
                                                       "started yet"))
    gpu_check.add_arguments(sub.add_parser("gpu-check", help="the first thing to run on a new GPU machine: every "
                                                             "model, SRVP at the paper configuration, compile, DDP"))

    evaluation = sub.add_parser("eval", help="evaluate a finished run's best checkpoint again, on its test set or "
                                             "another dataset or horizon")
    evaluation.add_argument("run_dir", help="the run folder (results/<dataset>/<model>/<run id>)")
    evaluation.add_argument("--dataset", help="another dataset to test on (default: the run's), e.g. mmnist-long")
    evaluation.add_argument("--horizon", type=int, help="frames to predict (default: the dataset's)")
    evaluation.add_argument("--data-dir", help="folder with the test dataset's files")
    evaluation.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    evaluation.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                            help="dataset.KEY=VALUE: an option of the test dataset; metrics.KEY=VALUE: a perceptual "
                                 "metric to add, e.g. metrics.lpips_weights=FILE (repeatable)")

    predict = sub.add_parser("predict", help="a trained run's predictions for frames you give: PNGs, a strip, a GIF")
    predict.add_argument("run_dir", help="the run folder (results/<dataset>/<model>/<run id>)")
    predict.add_argument("--input", required=True, help="a folder of images, a video or a .npy array of frames")
    predict.add_argument("--out", required=True, help="folder for the predicted frames, strip.png and prediction.gif")
    predict.add_argument("--horizon", type=int, help="frames to predict (default: the run's)")
    predict.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")

    sub.add_parser("list", help="models, model groups and datasets")

    profile = sub.add_parser("profile", help="parameters, FLOPs, latency, train-step time and peak memory")
    _add_common(profile)
    profile.add_argument("--format", choices=("table", "json"), default="table",
                         help="json: stdout holds the JSON alone (notes go to stderr)")
    profile.add_argument("--data-dir", help="folder with the dataset's files, for a dataset that reads its shape "
                                            "from them (arrays)")
    profile.add_argument("--no-timing", action="store_true",
                         help="parameters and FLOPs only (seconds per model); no latency, train step or memory")
    profile.add_argument("--results-dir", default="results",
                         help="profiles are also saved to <results-dir>/profiles/ for `bench report`")

    report = sub.add_parser("report", help="the paper's tables and figures from the runs found")
    report.add_argument("--results-dir", default="results", help="folder of run folders (default: results)")
    report.add_argument("--out", default="reports", help="where the report goes (default: reports)")
    report.add_argument("--convention", choices=("paper", "openstl"),
                        help="paper: per-pixel MSE/MAE on 0-255, SSIM data_range 255; openstl: per-frame sums over "
                             "pixels on [0, 1], OpenSTL's SSIM (default: each section's protocol's)")
    report.add_argument("--samples", default="0",
                        help="comma-separated indices of the stored test samples to draw (default: 0)")
    report.add_argument("--figure-format", default="png",
                        help="comma-separated figure formats: png, pdf, svg (default: png; the pages show the first)")

    data = sub.add_parser("data", help="dataset utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    check = data_sub.add_parser("check", help="videos, subjects and clips per split; missing or unreadable files")
    check.add_argument("--dataset", required=True)
    check.add_argument("--data-dir", required=True)
    _add_preset(check, "quick")

    speed = sub.add_parser("speed", help="time models, the metrics engine and data generation on this machine")
    speed.add_argument("--parts", default="models,metrics,generation",
                       help="any of models, metrics, generation, srvp-official (needs --official-srvp), openstl "
                            "(needs --openstl, --openstl-v030 or --predformer)")
    speed.add_argument("--models", default="convgru", help="models to time (names or groups)")
    speed.add_argument("--dataset", default="mmnist")
    _add_preset(speed, "quick")
    speed.add_argument("--batch-size", type=int, help="batch for the model timings (default: the preset's)")
    speed.add_argument("--device", default="cpu")
    speed.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median; at least 5)")
    speed.add_argument("--steps", type=int, default=50,
                       help="consecutive training steps timed per model (default 50; at least 10), so that a step "
                            "time that grows with training shows")
    speed.add_argument("--out", help="also write the markdown table to this file")
    speed.add_argument("--official-srvp", metavar="PATH",
                       help="your clone of github.com/yuseonk/SRVP, for --parts srvp-official (needs einops)")
    speed.add_argument("--openstl", metavar="PATH",
                       help="your clone of github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning), for --parts "
                            "openstl (time the training step of each model both suites have, at the same "
                            "configuration and batch)")
    speed.add_argument("--openstl-v030", metavar="PATH",
                       help="your clone of OpenSTL's branch OpenSTLv0.3.0, for --parts openstl (DMVFN)")
    speed.add_argument("--predformer", metavar="PATH",
                       help="your clone of github.com/yyyujintang/PredFormer, for --parts openstl (needs einops)")

    check_model = sub.add_parser("check-model", help="check that a model honours the contract")
    check_model.add_argument("spec", help="a model name or module:factory")
    check_model.add_argument("--dataset", default="mmnist")
    check_model.add_argument("--data-dir", help="folder with the dataset's files, for a dataset that reads its "
                                                "shape from them (arrays)")
    _add_preset(check_model, "quick")
    return parser


def _note(args: argparse.Namespace, text: str) -> None:
    """A line for the reader: on stdout, or on stderr when stdout holds machine-readable output."""
    print(text, file=sys.stderr if getattr(args, "format", None) == "json" else sys.stdout)


def _preset(args: argparse.Namespace, device_type: str = "cpu", *, say: bool = True) -> str:
    """The preset that ``--preset`` and ``--protocol`` name (the first output line says which)."""
    from vpbench import presets

    chosen = presets.choose(args.preset, args.protocol, device_type)
    if say and args.preset is not None:
        _note(args, f"preset: {chosen.name}")
    elif say:
        other = "quick" if chosen.scale == "full" else presets.NAMES[(chosen.protocol, "full")]
        _note(args, f"preset: {chosen.name} (default on {device_type.upper()}; --preset {other} to change)")
    return chosen.name


def cmd_run(args: argparse.Namespace) -> None:
    if args.launcher != "local":
        launch.command(args)
        return
    launch.check_local(args)
    from vpbench import presets
    from vpbench.benchmarks import distributed
    from vpbench.benchmarks.runner import parse_seeds, plan, run_sweep
    from vpbench.benchmarks.trainer import Runtime
    from vpbench.config import parse_sets
    from vpbench.environment import resolve_device
    from vpbench.models import expand

    device, planned = resolve_device(args.device), distributed.planned()
    if not planned.is_main:  # rank 0 speaks for the job
        sys.stdout = open(os.devnull, "w")
    preset = _preset(args, device.type)
    models = expand(args.models, presets.get(preset).protocol)
    seeds = parse_seeds(args.seeds) if args.seeds else [args.seed]
    configs = plan(models, args.dataset, preset=preset, seeds=seeds, epochs=args.epochs, sets=parse_sets(args.sets),
                   dist=planned, data_dir=args.data_dir)
    dist, device = distributed.from_environment(device)
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    runtime = Runtime(device=device, precision=precision, compile=args.compile, dist=dist)
    print(f"models: {', '.join(models)} | dataset: {args.dataset} | device: {device} | precision: {precision} | "
          f"seed{'s' * (len(seeds) > 1)}: {', '.join(map(str, seeds))}" + (f" | processes: {dist.world}" if dist.active else ""))
    results = run_sweep(configs, data_dir=args.data_dir, results_dir=args.results_dir, runtime=runtime,
                        resume=args.resume)
    distributed.finish(dist)
    if not dist.is_main:
        return
    print("\n| Model | Seed | MSE | SSIM | Status |\n|---|---:|---:|---:|---|")
    for m in results:
        mse = "-" if m["mse"] is None else f"{m['mse']:.1f}"
        ssim = "-" if m["ssim"] is None else f"{m['ssim']:.4f}"
        print(f"| {m['label']} | {m['seed']} | {mse} | {ssim} | {m['status']} |")


def _origin(origin: dict) -> str:
    return "" if origin.get("kind") == "builtin" else f"  [external: {origin.get('source', '')}]"


def cmd_eval(args: argparse.Namespace) -> None:
    from vpbench.benchmarks.reevaluate import evaluate_run
    from vpbench.config import parse_sets
    from vpbench.environment import resolve_device

    sets = parse_sets(args.sets)
    if sets["train"] or sets["model"]:
        raise UserError("bench eval takes --set dataset.KEY=VALUE and metrics.KEY=VALUE only: the model and its "
                        "training are the run's")
    folder = evaluate_run(args.run_dir, dataset=args.dataset, horizon=args.horizon, data_dir=args.data_dir,
                          sets=sets["dataset"], metrics=sets["metrics"], device=resolve_device(args.device))
    metrics = folder.read_json("metrics.json")
    print(f"{metrics['model']} on {metrics['dataset']} {metrics['frames'][0]} -> {metrics['frames'][1]}: "
          f"MSE {metrics['mse']:.1f}, MAE {metrics['mae']:.1f}, PSNR {metrics['psnr']:.2f}, SSIM {metrics['ssim']:.4f}")
    print(f"evaluation: {folder.path}")


def cmd_predict(args: argparse.Namespace) -> None:
    from vpbench.benchmarks.predict import predict_run
    from vpbench.environment import resolve_device

    files = predict_run(args.run_dir, args.input, args.out, horizon=args.horizon, device=resolve_device(args.device))
    print(f"wrote {len(files) - 2} predicted frames, strip.png and prediction.gif to {Path(args.out)}")


def cmd_list(args: argparse.Namespace) -> None:
    from vpbench import presets
    from vpbench.datasets import dataset_entry, dataset_names
    from vpbench.models import GROUPS, get_entry, group_members, model_names

    print("models:")
    for name in model_names():
        entry = get_entry(name)
        tags = ", ".join(sorted(entry.tags)) or "-"
        print(f"  {name:<18} {entry.label:<22} {tags}{_origin(entry.origin)}")
    print("groups:")
    for group, description in GROUPS.items():
        print(f"  {group:<18} {description}: {', '.join(group_members(group)) or '(none registered)'}")
    print("datasets:")
    for name in dataset_names():
        entry = dataset_entry(name)
        print(f"  {name:<18} {entry.description}{_origin(entry.origin)}")
    print("presets (--protocol, --preset):")
    for preset in presets.PRESETS.values():
        print(f"  {preset.name:<18} protocol {preset.protocol}, scale {preset.scale}")


def cmd_profile(args: argparse.Namespace) -> None:
    from vpbench import config as cfg
    from vpbench import presets
    from vpbench.benchmarks.profiling import profile_model, save_profiles
    from vpbench.benchmarks.runner import build_model
    from vpbench.datasets import dataset_entry
    from vpbench.environment import resolve_device
    from vpbench.models import expand
    from vpbench.report.tables import optional_number as _ms

    device = resolve_device(args.device)
    preset = _preset(args, device.type)
    timing = not args.no_timing
    if timing and presets.get(preset).scale == "full" and device.type == "cpu":
        _note(args, "note: timing the paper preset on a CPU trains at the preset's batch (minutes and tens of GB "
                    "per recurrent model); --no-timing gives parameters and FLOPs in seconds")
    rows = []
    for name in expand(args.models, presets.get(preset).protocol):
        config = cfg.resolve(preset, name, args.dataset, sets=cfg.parse_sets(args.sets), data_dir=args.data_dir)
        spec = dataset_entry(args.dataset).spec(config["dataset"])
        costs = profile_model(build_model(config), spec, config["train"], device, timing=timing)
        rows.append({"model": name, "dataset": args.dataset, "preset": preset, "device": str(device), **costs})
    save_profiles(rows, args.results_dir)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return
    print(f"\ndevice: {device} | batch 1 for FLOPs and latency, batch {config['train']['batch_size']} for a train step")
    print("| Model | Params | GFLOPs | Latency (ms) | Train step (ms) | Peak memory (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {r['flops'] / 1e9:.2f} | {_ms(r['latency_ms'], 1)} | "
              f"{_ms(r['train_step_ms'], 1)} | {_ms(r['peak_mem_mb'], 0)} |")



def cmd_report(args: argparse.Namespace) -> None:
    from vpbench.report.build import build_report

    build_report(args.results_dir, args.out, convention=args.convention, samples=args.samples,
                 figure_formats=args.figure_format)


def cmd_speed(args: argparse.Namespace) -> None:
    from vpbench import presets
    from vpbench.benchmarks.speed import PARTS, speed_markdown
    from vpbench.environment import resolve_device
    from vpbench.models import expand
    from vpbench.store import atomic_write_bytes

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise UserError(f"--parts {args.parts!r}: choose from {', '.join(PARTS)}")
    if args.repeats < 5:
        raise UserError(f"--repeats {args.repeats}: use at least 5 so the median means something")
    if args.steps < 10:
        raise UserError(f"--steps {args.steps}: use at least 10, to compare the first training steps with the last")
    if "srvp-official" in parts and not args.official_srvp:
        raise UserError("--parts srvp-official needs --official-srvp PATH, the folder of your clone of "
                        "github.com/yuseonk/SRVP")
    clones = {source: path for source, path in (("openstl", args.openstl), ("openstl-v030", args.openstl_v030),
                                                ("predformer", args.predformer)) if path}
    if "openstl" in parts and not clones:
        raise UserError("--parts openstl needs --openstl PATH, the folder of your clone of "
                        "github.com/chengtan9907/OpenSTL (or --openstl-v030 PATH, --predformer PATH)")
    preset = _preset(args, say=False)
    text = speed_markdown(parts, models=expand(args.models, presets.get(preset).protocol), dataset=args.dataset,
                          preset=preset,
                          batch=args.batch_size, device=resolve_device(args.device), repeats=args.repeats,
                          official_path=args.official_srvp, steps=args.steps, clones=clones)
    print(text)
    if args.out:
        atomic_write_bytes(Path(args.out), text.encode())


def cmd_data(args: argparse.Namespace) -> None:
    from vpbench.benchmarks.data_check import data_check

    data_check(args.dataset, args.data_dir, preset=_preset(args, say=False))


def cmd_check_model(args: argparse.Namespace) -> None:
    from vpbench.benchmarks.check_model import check_model

    check_model(args.spec, args.dataset, preset=_preset(args, say=False), data_dir=args.data_dir)


COMMANDS = {
    "run": cmd_run,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "list": cmd_list,
    "profile": cmd_profile,
    "report": cmd_report,
    "data": cmd_data,
    "check-model": cmd_check_model,
    "speed": cmd_speed,
    "status": status.command,
    "gpu-check": gpu_check.command,
}


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler, torchrun stopping its workers): handled like Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


# Seconds the main thread has to act on Ctrl-C or SIGTERM before the process stops at once. Python runs
# signal handlers between bytecodes only, so a long native op (a training step of the paper preset on
# a CPU takes minutes) would delay the stop; a run gets longer to mark itself interrupted.
GRACE_SECONDS = {"run": 20.0}
DEFAULT_GRACE = 2.0


def _hint(command: str) -> str:
    return "; resume with --resume" if command == "run" else ""


class _Watchdog:
    """Ends the process ``grace`` seconds after Ctrl-C or SIGTERM unless the command has stopped by then.

    Python's C-level handler writes the number of every signal that has a Python handler to the wakeup socket
    at once, whatever the main thread is doing; this thread reads them there and acts on SIGINT and SIGTERM only
    (torch's DataLoader handles SIGCHLD, which each exiting worker sends)."""

    def __init__(self, command: str, grace: float) -> None:
        self.command, self.grace = command, grace
        self.done = threading.Event()
        self._read, self._write = socket.socketpair()
        self._write.setblocking(False)
        self._previous = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        signum = None
        while signum not in (signal.SIGINT, signal.SIGTERM):
            try:
                data = self._read.recv(1)
            except OSError:
                return
            if not data:
                return
            signum = data[0]
        if self.done.wait(self.grace):
            return
        what = "terminated" if signum == signal.SIGTERM else "interrupted"
        print(f"bench {self.command}: {what}{_hint(self.command)}", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    def close(self) -> None:
        self.done.set()
        signal.set_wakeup_fd(self._previous)
        self._write.close()
        self._read.close()


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # usage errors and --help, as a return code for in-process callers
        return int(exit_.code or 0)
    from vpbench.environment import flush_denormals

    flush_denormals()
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    watchdog = _Watchdog(args.command, GRACE_SECONDS.get(args.command, DEFAULT_GRACE)) if in_main_thread else None
    try:
        COMMANDS[args.command](args)
    except UserError as err:
        print(f"bench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt as interrupt:
        what = "terminated" if isinstance(interrupt, Terminated) else "interrupted"
        print(f"bench {args.command}: {what}{_hint(args.command)}", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
    finally:
        if watchdog is not None:
            watchdog.close()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
