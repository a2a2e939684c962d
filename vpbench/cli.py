"""The ``bench`` command line (also ``python -m vpbench.cli``)."""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import Callable

from vpbench import launch, signals
from vpbench.diagnostics import gpu_check
from vpbench.errors import UserError
from vpbench.launch import status


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


def _add_metrics(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", metavar="NAMES", help="comma-separated metrics to compute per frame, names (see "
                   "`bench list metrics`) or module:function (default: every registered metric that needs no "
                   "weight file, plug-ins included)")
    p.add_argument("--samples", type=int, metavar="K", help="futures drawn per test sequence of a stochastic model "
                   "(e.g. mcvd; seeded by the run's seed): the report gives the best of K, the mean of K and their "
                   "spread (default 1); deterministic models predict one future whatever K")


def _add_fetch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mirror", metavar="URL", help="fetch every file from URL/<file name> instead of its official "
                                                   "address (default: $VPBENCH_MIRROR)")
    p.add_argument("--sha256", metavar="HEX", help="the SHA-256 the file must have (one file)")


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
    run.add_argument("--logger", default="none", metavar="NAMES",
                     help="also log to experiment trackers: tensorboard, wandb (offline), mlflow (a local store) or "
                          "none (default), comma-separated; logs go under each run folder (--set logger.dir=DIR)")
    _add_metrics(run)
    run.add_argument("--init", metavar="RUN", help="start from the weights of this run folder's best checkpoint "
                                                   "(e.g. an imported one) and fine-tune them under this run's recipe")
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
    _add_metrics(evaluation)

    predict = sub.add_parser("predict", help="a trained run's predictions for frames you give: PNGs, a strip, a GIF")
    predict.add_argument("run_dir", help="the run folder (results/<dataset>/<model>/<run id>)")
    predict.add_argument("--input", required=True, help="a folder of images, a video or a .npy array of frames")
    predict.add_argument("--out", required=True, help="folder for the predicted frames, strip.png and prediction.gif")
    predict.add_argument("--horizon", type=int, help="frames to predict (default: the run's)")
    predict.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")

    listing = sub.add_parser("list", help="models, model groups, datasets, metrics and presets")
    listing.add_argument("what", nargs="?", help="only one list: models, groups, datasets, metrics or presets")

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

    report = sub.add_parser("report", help="the paper's tables and figures from the runs found, and reports/index.html")
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
    check.add_argument("--set", dest="sets", action="append", default=[], metavar="dataset.KEY=VALUE",
                       help="a dataset option, as for run, e.g. dataset.variable=t2m (repeatable)")
    download = data_sub.add_parser("download", help="a published data set's files from their official addresses: "
                                                    "resumable, checked, extracted, then `bench data check`")
    download.add_argument("name", nargs="?", help="the published data set (without it: the list)")
    download.add_argument("--to", metavar="DIR", help="the folder to fill (default: data/NAME)")
    _add_fetch_options(download)
    _add_preset(download, "quick")

    weights = sub.add_parser("weights", help="published checkpoints and metric weights: list them, download one")
    weights_sub = weights.add_subparsers(dest="weights_command", required=True, parser_class=_Parser)
    listed = weights_sub.add_parser("list", help="every checkpoint vpbench imports, and the metrics' weights, with "
                                                 "their addresses")
    listed.add_argument("--model", help="only this vpbench model's checkpoints")
    listed.add_argument("--dataset", help="only the checkpoints trained on this vpbench dataset")
    fetched = weights_sub.add_parser("download", help="one file of `bench weights list`, resumable and checked")
    fetched.add_argument("name", help="its name in `bench weights list`")
    fetched.add_argument("--to", metavar="DIR", default="weights", help="the folder (default: weights)")
    _add_fetch_options(fetched)

    imported = sub.add_parser("import", help="a checkpoint of OpenSTL, SRVP, PredFormer, SimVP, IAM4VP, VMRNN or "
                                             "Earthformer (released or your own) as a vpbench run folder, for eval, "
                                             "predict, report and --init")
    imported.add_argument("code", choices=("openstl", "srvp", "predformer", "simvp", "iam4vp", "vmrnn", "earthformer"),
                          help="the code that wrote it")
    imported.add_argument("checkpoint", help="the checkpoint file (.pth, .pt or a Lightning .ckpt)")
    imported.add_argument("--model", help="the vpbench model (default: the catalogue's, for a released file; the "
                                          "code's only model, for every code but openstl)")
    imported.add_argument("--dataset", help="the vpbench dataset it was trained on (default: the catalogue's)")
    imported.add_argument("--preset", help="the scale of that code's configuration (default: its full one)")
    imported.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                          help="model.KEY=VALUE or dataset.KEY=VALUE where the checkpoint was trained otherwise")
    imported.add_argument("--results-dir", default="results", help="where the run folder goes (default: results)")
    imported.add_argument("--source", metavar="URL", help="where the file came from, for its provenance (default: "
                                                          "the catalogue's address of a released file)")

    speed = sub.add_parser("speed", help="time models, the metrics engine and data generation on this machine")
    speed.add_argument("--parts", default="models,metrics,generation",
                       help="any of models, metrics, generation, srvp-official (needs --official-srvp), openstl "
                            "(needs --openstl, --openstl-v030, --predformer, --vmrnn with --mamba, --iam4vp or "
                            "--earthformer), sweep (make demo's quick sweep against the way it ran before; tens of "
                            "minutes)")
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
                       help="your clone of OpenSTL's branch OpenSTLv0.3.0, for --parts openstl "
                            "(DMVFN, PredNet, CrevNet)")
    speed.add_argument("--predformer", metavar="PATH",
                       help="your clone of github.com/yyyujintang/PredFormer, for --parts openstl (needs einops)")
    speed.add_argument("--vmrnn", metavar="PATH",
                       help="your clone of github.com/yyyujintang/VMRNN-PyTorch, for --parts openstl (with --mamba; "
                            "needs timm 0.6.11, einops and fvcore)")
    speed.add_argument("--mamba", metavar="PATH",
                       help="your clone of github.com/state-spaces/mamba: VMRNN's reference scans with its "
                            "pure-PyTorch selective_scan_ref on a CPU")
    speed.add_argument("--iam4vp", metavar="PATH",
                       help="your clone of github.com/seominseok0429/Implicit-Stacked-Autoregressive-Model-for-Video-"
                            "Prediction, for --parts openstl (needs einops)")
    speed.add_argument("--earthformer", metavar="PATH",
                       help="your clone of github.com/amazon-science/earth-forecasting-transformer, for --parts "
                            "openstl (Earthformer)")
    speed.add_argument("--mcvd", metavar="PATH",
                       help="your clone of github.com/voletiv/mcvd-pytorch (or an export of its models/ folder), for "
                            "--parts openstl (MCVD's denoiser)")

    check_model = sub.add_parser("check-model", help="check that a model honours the contract")
    check_model.add_argument("spec", help="a model name or module:factory")
    check_model.add_argument("--dataset", default="mmnist")
    check_model.add_argument("--data-dir", help="folder with the dataset's files, for a dataset that reads its "
                                                "shape from them (arrays)")
    _add_preset(check_model, "quick")
    return parser


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of command ``name`` (argparse keeps subparsers in a private action)."""
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return action.choices[name]
    raise RuntimeError(f"bench has no {name} command")


def run_parser() -> argparse.ArgumentParser:
    """``bench run``'s parser: what a launched job's command line may hold."""
    return _subparser(build_parser(), "run")


def cmd_run(args: argparse.Namespace) -> None:
    launch.check_options(args)
    launch.get_launcher(args.launcher).launch(args, run_parser())


def _lazy(module: str) -> Callable[[argparse.Namespace], None]:
    """``module.command``, imported when the command runs (so that ``bench list`` does not import the report)."""
    def call(args: argparse.Namespace) -> None:
        importlib.import_module(module).command(args)

    return call


DATA_COMMANDS = {"check": "vpbench.diagnostics.data_check", "download": "vpbench.diagnostics.data_download"}
COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "run": cmd_run,
    "eval": _lazy("vpbench.harness.eval_run"),
    "predict": _lazy("vpbench.harness.predict"),
    "list": _lazy("vpbench.diagnostics.listing"),
    "profile": _lazy("vpbench.diagnostics.profile"),
    "report": _lazy("vpbench.report.build"),
    "data": lambda args: _lazy(DATA_COMMANDS[args.data_command])(args),
    "weights": _lazy("vpbench.reference.weights"),
    "import": _lazy("vpbench.reference.importing"),
    "check-model": _lazy("vpbench.diagnostics.check_model"),
    "speed": _lazy("vpbench.diagnostics.speed"),
    "status": status.command,
    "gpu-check": lambda args: gpu_check.command(args, bench=main),
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # usage errors and --help, as a return code for in-process callers
        return int(exit_.code or 0)
    from vpbench.environment import flush_denormals

    flush_denormals()
    try:
        with signals.stoppable(args.command):
            COMMANDS[args.command](args)
    except UserError as err:
        print(f"bench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, signals.Terminated)
        print(signals.stopped_line(args.command, "terminated" if terminated else "interrupted"), file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
