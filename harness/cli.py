# PARALLEL ENGINEERS: read /tmp/common_prompt.md first (shared rules for this checkout). [lead removes this line]
"""The ``harness`` command line: parses arguments, calls the library, prints summaries.

Errors caused by input (:class:`harness.errors.HarnessError`) print one clear line and exit
with status 2; Ctrl-C exits with 130 after the stage has cleaned up (finished artifacts
stay valid, nothing is half-written; rerun the same command to resume).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from .errors import HarnessError


def _quiet_imports() -> None:
    """Silence import-time noise of lava-dl and torch that says nothing about the user's run."""
    warnings.filterwarnings("ignore", message=".*weight_norm is deprecated.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning")


# ---------------------------------------------------------------- train
def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a SLAYER network and export it for the device",
                       description="Train a model spec with lava-dl SLAYER. Writes RUN_DIR/model/: "
                                   "checkpoint.pt, network.net (netx HDF5) and card.json. "
                                   "Interrupted runs resume from the last finished epoch.")
    p.add_argument("--model", required=True, help="model spec: a name in models/ (e.g. digits-mlp, "
                   "nmnist-mlp, nmnist-conv) or a path to a .toml spec")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory to write into")
    p.add_argument("--data", metavar="PATH", help="data directory (required for N-MNIST models, "
                   "e.g. ../shared/data/nmnist_small); digits are embedded")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling and rate coding (default 0)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: the spec's)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train_run

    card = train_run(args.model, args.run, data_path=args.data, seed=args.seed, epochs=args.epochs,
                     progress=not args.no_progress)
    print(f"{card['model']} seed {card['seed']}: test accuracy {card['test_accuracy']:.2%} "
          f"(train {card['train_accuracy']:.2%}) in {card['training_seconds']:.0f} s")
    print(f"model card: {os.path.join(args.run, 'model', 'card.json')}")
    return 0


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Neuromorphic robustness harness: train SLAYER spiking networks, craft spike-domain "
                    "adversarial examples (G2S/RSF), replay them on Lava's Loihi 2 simulation, report.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_train,):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_imports()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted; finished artifacts are kept, rerun to resume",
              file=sys.stderr)
        return 130
