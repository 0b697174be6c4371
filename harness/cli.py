"""The ``harness`` command line: parses arguments, calls the library, prints summaries.

Errors caused by input (:class:`harness.errors.HarnessError`) print one clear line and exit
with status 2; Ctrl-C exits with 130 after the stage has cleaned up (finished artifacts
stay valid, nothing is half-written; rerun the same command to resume).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from pathlib import Path

from .errors import HarnessError
from .signals import sigterm_as_interrupt


def _quiet_imports() -> None:
    """Silence import-time noise of lava-dl and torch that says nothing about the user's run."""
    warnings.filterwarnings("ignore", message=".*weight_norm is deprecated.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning")


def default_threads() -> int:
    """torch threads by default: all cores but one (on 2 cores: 1), so that the machine stays
    responsive and Lava's processes or a second job do not fight one torch pool for every core."""
    return max(1, (os.cpu_count() or 2) - 1)


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, metavar="N", default=default_threads(),
                   help=f"torch threads (default {default_threads()}: the cores but one)")


def add_torch_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--torch-device", choices=("cpu", "cuda"), default="cpu",
                   help="torch device of the passes (default cpu; cuda where torch finds a GPU: results "
                        "are not the CPU's bits, compare success rates)")


def set_threads(args: argparse.Namespace) -> None:
    """Apply --threads to torch (only commands that may run torch have it).

    Where torch is not imported yet, this sets ``OMP_NUM_THREADS``, which torch reads when it
    is first imported, instead of importing torch (5-7 s) for a command that may need none
    of it (``harness report`` of a run without attacks).
    """
    from .errors import ConfigError

    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(args.threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)


def add_binning(p: argparse.ArgumentParser, steps_help: str, dt_help: str) -> None:
    """--sensor-size, --steps, --dt-ms: how an event --input becomes dense spikes."""
    p.add_argument("--sensor-size", type=int, nargs=3, metavar=("W", "H", "P"),
                   help="sensor width, height and polarities, to bin an event --input (tonic-style x, y, t in us, p)")
    p.add_argument("--steps", type=int, metavar="T", help=steps_help)
    p.add_argument("--dt-ms", type=float, metavar="MS", help=dt_help)


def binning_of(args: argparse.Namespace):
    """The :class:`harness.data.inputs.Binning` the flags describe (None unless sensor size and steps are given)."""
    from .data.inputs import Binning, check_binning

    check_binning(args.sensor_size, args.steps, args.dt_ms)  # every flag given, even when nothing is binned
    if args.sensor_size is None or args.steps is None:
        return None
    return Binning(tuple(args.sensor_size), args.steps, 1.0 if args.dt_ms is None else args.dt_ms)


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
    p.add_argument("--force", action="store_true", help="train even if the run holds a model made from the same "
                   "spec, seed, epochs and data (otherwise it is kept)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    adv = p.add_argument_group("adversarial training", "override the spec's [training.adversarial] (any of them "
                               "turns it on; docs/models.md)")
    adv.add_argument("--adv-max-flips", type=int, metavar="B", help="flip budget (L0) of each adversarial row")
    adv.add_argument("--adv-share", type=float, metavar="S", help="share of each batch's rows made adversarial, "
                     "in (0, 1] (default 0.5)")
    adv.add_argument("--adv-iterations", type=int, metavar="K", help="G2S steps per adversarial row (default 3)")
    adv.add_argument("--adv-start-epoch", type=int, metavar="E", help="first epoch with adversarial rows "
                     "(default 0)")
    add_threads(p)
    add_torch_device(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from .adversarial_training import adversary_for
    from .train import train_run

    adversarial = {key: getattr(args, "adv_" + key) for key in ("max_flips", "share", "iterations", "start_epoch")
                   if getattr(args, "adv_" + key) is not None}
    card = train_run(args.model, args.run, data_path=args.data, seed=args.seed, epochs=args.epochs,
                     progress=not args.no_progress, force=args.force, device=args.torch_device,
                     adversarial=adversarial, adversary_for=adversary_for)
    print(f"{card['model']} seed {card['seed']}: test accuracy {card['test_accuracy']:.2%} "
          f"(train {card['train_accuracy']:.2%}) in {card['training_seconds']:.0f} s")
    print(f"model card: {os.path.join(args.run, 'model', 'card.json')}")
    return 0


# ---------------------------------------------------------------- import / export
def add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="bring your own network: a lava-dl netx file or a NIR graph becomes a run",
                       description="Import a netx HDF5 network (lava-dl's export) or a NIR graph (snnTorch, Norse, "
                                   "Sinabs, Rockpool) into RUN_DIR/model/: the file byte-identical (a NIR graph is "
                                   "first exported to netx), a differentiable twin of the device's arithmetic, the "
                                   "test data and a card with provenance. The twin is proven on the test data: "
                                   "anything short of 100% identical output rasters against loihi2-fixed is "
                                   "refused. Then attack, replay, report work as on a trained run.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--network", metavar="FILE.net", help="netx HDF5 network")
    source.add_argument("--nir", metavar="GRAPH.nir", help="NIR graph (Input, Affine/Linear, Conv2d, Flatten, "
                        "CubaLIF/LIF/IF, Output)")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory to create")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", metavar="DIR", help="N-MNIST folder: its test split is the test data")
    data.add_argument("--input", metavar="SPIKES", help="test spikes (.npy/.npz/.h5, or tonic-style events with "
                      "--sensor-size) (needs --labels)")
    p.add_argument("--labels", metavar="LABELS.npy", help="classes of the --input samples")
    add_binning(p, "time steps (N-MNIST default 30; events: required)", "milliseconds per step (N-MNIST default "
                "10; required with --input)")
    p.add_argument("--n", type=int, metavar="N", help="use the first N test samples (default all)")
    p.add_argument("--force", action="store_true", help="replace a model already in RUN_DIR")
    p.add_argument("--source", choices=["snntorch", "norse", "sinabs", "rockpool", "nir"],
                   help="framework that exported the --nir graph: selects its input-gain and reset conventions "
                        "(default: from the graph's metadata where recorded, else nir: NIR's own equations)")
    p.add_argument("--source-reset", choices=["zero", "subtract", "snntorch-zero"],
                   help="the source framework's reset after a spike, when it is not the framework's default "
                        "(e.g. snnTorch with reset_mechanism='zero': snntorch-zero)")
    p.add_argument("--reference-predictions", metavar="PRED.npy", help="the source framework's own predictions on "
                   "the test rows ((N,) ints, -1 = none): the reported agreement is the device's with them")
    p.add_argument("--allow-silent", action="store_true", help="import even when the device is silent or tied on "
                   "most test rows (otherwise refused with exit status 2)")
    add_sample_mode(p)
    add_threads(p)
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from .data.inputs import load_input, load_labels
    from .errors import ConfigError
    from .fmt import pct
    from .interop.commands import SILENT_LIMIT, import_network

    spikes = labels = None
    if args.input is not None:
        if args.labels is None:
            raise ConfigError("--input needs --labels LABELS.npy (the classes of the test samples)")
        spikes = load_input(args.input, binning=binning_of(args))
        labels = load_labels(args.labels, len(spikes))
    card = import_network(args.run, network=args.network, nir_graph=args.nir, data=args.data, spikes=spikes,
                          labels=labels, steps=args.steps, dt_ms=args.dt_ms, limit=args.n, force=args.force,
                          sample_mode=args.sample_mode, source=args.source, source_reset=args.source_reset,
                          reference_predictions=args.reference_predictions, allow_silent=args.allow_silent)
    proof = card["twin_device"]
    print(f"imported {card['model']} ({card['source']['sha256'][:12]}): twin vs loihi2-fixed ({proof['sample_mode']} "
          f"samples) on {proof['n_samples']} "
          f"samples: {pct(proof['raster_exact'])} identical rasters, {pct(proof['agreement'])} agreement; "
          f"test accuracy {pct(card['test_accuracy'])} (device {pct(card['device_accuracy'])})")
    nir = card.get("provenance", {}).get("nir")
    if nir:
        a = nir["agreement"]
        how = "from the graph's metadata" if nir["source_detected"] else ("--source" if args.source else
                                                                           "assumed: the graph does not say")
        print(f"NIR graph from {nir['source']} ({how}; its reset: {nir['source_reset']}, the device's: "
              f"{nir['device_reset']}): float graph vs device prediction agreement {pct(a['prediction_agreement'])} "
              f"(reset alone {pct(a['reset_agreement'])}, quantization alone {pct(a['quantization_agreement'])})")
        if "reference_agreement" in a:
            r = a["reference_agreement"]
            print(f"device vs {nir['source']}'s own predictions: {pct(r['rate'])} ({r['k']} of {r['n']}, 95% CI "
                  f"{pct(r['ci95'][0])}-{pct(r['ci95'][1])})")
        if a["device_silent_or_tied"] > SILENT_LIMIT:
            print(f"WARNING: the device is silent or tied on {pct(a['device_silent_or_tied'])} of the test rows: "
                  "accuracy and agreement mean little (imported because of --allow-silent)", file=sys.stderr)
    print(f"model card: {os.path.join(args.run, 'model', 'card.json')}")
    return 0


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a harness-trained network as a NIR graph",
                       description="Write RUN_DIR's trained network as a NIR graph (CubaLIF nodes, weights as the "
                                   "device uses them); importing it again gives the same weights and neurons.")
    p.add_argument("--nir", action="store_true", required=True, help="the format (NIR, the only one)")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory with a trained model")
    p.add_argument("out", metavar="OUT.nir", help="the graph file to write")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from .interop.commands import export_network

    print(f"NIR graph: {export_network(args.run, args.out)}")
    return 0


# ---------------------------------------------------------------- run
def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a whole experiment: train -> attack -> replay -> report",
                       description="Run every stage of an experiment file (experiments/*.toml): train its "
                                   "models, run its attacks, replay them on its hardware profiles, write "
                                   "results.json per run and the report. Finished artifacts made with the "
                                   "same settings are kept, so an interrupted experiment resumes and a "
                                   "finished one re-runs without rewriting anything.")
    p.add_argument("experiment", metavar="EXPERIMENT", help="experiment file (path to a .toml) or a name "
                   "in experiments/ (e.g. demo)")
    p.add_argument("--run", metavar="RUN_DIR", help="experiment directory (default: runs/<name>)")
    p.add_argument("--data", metavar="PATH", help="N-MNIST data folder, overriding the experiment's "
                   "(default ../shared/data/nmnist_small relative to the repository)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars (stage lines stay)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: every task in this process, one after another (default); ray: independent "
                        "tasks in parallel on Ray workers, one task server process per worker with 1 torch "
                        "thread (docs/scale.md)")
    p.add_argument("--address", metavar="auto|HOST:PORT", help="with --executor ray: a running Ray cluster "
                   "('auto': the one this machine belongs to); default: start a local Ray for this run")
    p.add_argument("--workers", type=int, metavar="N", help="with --executor ray: task servers (default: one "
                   "per CPU of the Ray cluster)")
    add_threads(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .experiment import load_experiment, run_experiment

    if args.executor == "local" and (args.address is not None or args.workers is not None):
        raise ConfigError("--address and --workers need --executor ray")
    experiment = load_experiment(args.experiment, data=args.data)
    executor = None
    if args.executor == "ray":
        from .experiment.ray_executor import RayExecutor

        executor = RayExecutor(address=args.address, workers=args.workers)
    # Under Ray the tasks' progress bars would only reach the workers' logs: the stage lines say it all.
    report = run_experiment(experiment, args.run, progress=not args.no_progress and executor is None,
                            executor=executor)
    print(f"report: {report}")
    return 0


# ---------------------------------------------------------------- evaluate
def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="robust accuracy: the worst case over an ensemble of attacks, on the device",
                       description="Robust accuracy at budget b = the share of the first N test rows that the "
                                   "device classifies correctly and that no attack of the ensemble breaks with at "
                                   "most b flipped elements (a tie or silence is wrong). Attacks run as a cascade "
                                   "(gradient attacks, then score/decision-based ones, then random flips), every "
                                   "example judged offline and on each profile through one device session. Writes "
                                   "RUN_DIR/evaluations/<id>.h5 and prints each curve with Wilson 95% intervals "
                                   "and the trust flags (docs/evaluation.md).")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory with a trained model")
    p.add_argument("--profile", action="append", metavar="P", help="hardware profile (repeatable; default "
                   "loihi2-fixed): a name in hw_profiles/ or a path to a .toml profile")
    p.add_argument("--budgets", default="10,25,50,100,200,500", metavar="B,B,...",
                   help="flip budgets (L0), comma-separated integers >= 1 (default 10,25,50,100,200,500)")
    p.add_argument("--retime-budgets", metavar="D,D,...", help="also the retiming curve: robust accuracy when "
                   "every spike may move <= D steps in time, per D (e.g. 1,2,3; docs/evaluation.md)")
    p.add_argument("--ensemble", default="standard", metavar="NAME|FILE.toml",
                   help="the attacks: quick, standard (in experiments/ensembles/) or a TOML file (default standard)")
    p.add_argument("--n", type=int, metavar="N", help="evaluate the first N test rows (default all)")
    p.add_argument("--batch-size", type=int, default=128, metavar="B", help="rows per pass (never changes results)")
    p.add_argument("--data", metavar="PATH", help="N-MNIST directory, if it moved since training")
    p.add_argument("--force", action="store_true", help="recompute although an up-to-date evaluation exists")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_torch_device(p)
    add_threads(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import evaluate, parse_budgets
    from .evaluation.record import format_summary, load_evaluation
    from .evaluation.retiming import parse_retime_budgets

    budgets = parse_budgets(args.budgets)
    retime = parse_retime_budgets(args.retime_budgets) if args.retime_budgets else []
    path = evaluate(args.run, args.ensemble, args.profile or ["loihi2-fixed"], budgets, args.n,
                    batch_size=args.batch_size, progress=not args.no_progress, device=args.torch_device,
                    data_path=args.data, force=args.force, retime_budgets=retime)
    evaluation = load_evaluation(path)
    print(format_summary(evaluation))
    return 2 if evaluation.errors else 0


# ---------------------------------------------------------------- report
def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="summarise a run directory: results.json and the report",
                       description="Write RUN_DIR/results.json (validated against its JSON Schema), "
                                   "report.md, report.html (self-contained) and figures/*.png from the "
                                   "run's model card, attacks and replays. Unchanged files are not "
                                   "rewritten. For an experiment directory use: harness run EXPERIMENT.")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory (made by harness train)")
    p.add_argument("--budgets", metavar="FLIPS", type=int, nargs="+",
                   help="flip budgets of the success curves (default: 10 20 50 100 200 500 1000 2000)")
    p.add_argument("--evaluation", metavar="ID", help="the evaluation the report opens with (an id in "
                   "RUN_DIR/evaluations/; default the newest)")
    add_threads(p)
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_run_report
    from .results import DEFAULT_BUDGETS

    report = write_run_report(args.run, budgets=args.budgets or DEFAULT_BUDGETS, evaluation=args.evaluation)
    print(f"results: {os.path.join(args.run, 'results.json')}")
    print(f"report: {report}")
    return 0


# ---------------------------------------------------------------- compare
def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare runs of different experiments side by side",
                       description="Print the headline figures of several run directories side by side (each "
                                   "rate with its Wilson 95% interval and counts; runs that are seeds of one "
                                   "cell also as mean over seeds and pooled), from their results.json. With "
                                   "--csv, write every figure in results.csv's long format and a figure of "
                                   "offline success next to it (or at --figure).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories with a results.json")
    p.add_argument("--csv", metavar="OUT", help="write the long-format CSV here (and the figure next to it)")
    p.add_argument("--figure", metavar="PATH", help="write the figure (PNG) here")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import write_comparison

    text, csv_path, figure_path = write_comparison(args.runs, args.csv, args.figure)
    print(text, end="")
    for what, path in (("csv", csv_path), ("figure", figure_path)):
        if path is not None:
            print(f"{what}: {path}")
    return 0


# ---------------------------------------------------------------- attack
def add_attack(sub: argparse._SubParsersAction) -> None:
    from .attacks.registry import help_lines

    p = sub.add_parser("attack", help="craft spike-domain adversarial examples (G2S/RSF) and baselines",
                       description="Attack the run's model on its test split and write RUN_DIR/attacks/<id>.h5 "
                                   "(the id encodes the settings; an existing file for the same settings and "
                                   "model is reused). A setting the method does not take is refused. "
                                   "See docs/attacks.md.",
                       epilog="methods:\n" + help_lines(), formatter_class=argparse.RawDescriptionHelpFormatter,
                       argument_default=argparse.SUPPRESS)
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory with a trained model")
    p.add_argument("--method", metavar="NAME", help="a registered attack (listed below; default g2s-rsf, or "
                   "transfer with --transfer-from)")
    p.add_argument("--targeted", metavar="MODE", choices=("every-other", "random", "least-likely"),
                   help="targeted attack: every-other (all 9 other classes), random (one other class), "
                        "least-likely (fewest clean output spikes); default untargeted")
    p.add_argument("--iterations", type=int, metavar="K", help="maximum iterations per sample (default 25)")
    p.add_argument("--gamma", type=float, metavar="G", help="RSF turnover rate (default 0.05)")
    p.add_argument("--eta", type=float, metavar="E",
                   help="G2S step scale in (0, 1]: flip probability eta*|g|/max|g| (default 1; sparse mode e.g. 0.05)")
    p.add_argument("--reduce", action="store_true",
                   help="after success, revert flips the example does not need (sparse mode)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--max-flips", type=int, metavar="N", help="L0 budget in flipped elements")
    budget.add_argument("--max-flip-rate", type=float, metavar="R", help="L0 budget as a fraction of the elements")
    p.add_argument("--budget-mode", choices=("stop", "truncate"),
                   help="stop: a row whose L0 exceeds the budget stops, failed (the spec; default); truncate: "
                        "flips beyond the budget are never made (budget-aware G2S and RSF), a spent row stops")
    p.add_argument("--threshold-mode", choices=("scale-surrogate", "fixed-surrogate"),
                   help="with --attack-threshold: scale SLAYER's surrogate width with it (default) or keep it "
                        "as trained (the threshold alone, the paper's intervention)")
    p.add_argument("--rsf-trigger-ratio", type=float, metavar="R",
                   help="g2s-rsf: RSF also where max|g| < R x the sample's first max|g| (default 0: only where "
                        "the gradient is exactly zero, the paper)")
    p.add_argument("--attack-threshold", type=float, metavar="TH",
                   help="penultimate-layer threshold during the gradient pass only (judging uses the model as trained)")
    p.add_argument("--loss", choices=("spike-rate", "cross-entropy", "margin", "energy", "energy-stealthy"),
                   help="loss whose gradient drives the attack (default: the model's training loss); energy: "
                        "raise the hidden layers' synaptic operations (a sponge attack), energy-stealthy: the "
                        "same while keeping the clean prediction")
    p.add_argument("--energy-target", type=float, metavar="R",
                   help="energy losses: stop a sample once its activity ratio (adversarial / clean hidden-layer "
                        "synops) reaches R > 1; success = reached R (default: run all K iterations, success = "
                        "ratio > 1)")
    p.add_argument("--energy-objective", choices=("hidden-synops", "synops"),
                   help="energy losses: what to raise: the hidden layers' synaptic operations (default) or all "
                        "of them, the input stream's included (what the device's energy counts)")
    p.add_argument("--threat", choices=("flips", "add-only", "delete-only"),
                   help="g2s-rsf, g2s, rsf, sda: which flips are allowed: any (default), add-only (never remove a "
                        "spike), delete-only (never add one)")
    p.add_argument("--max-passes", type=int, metavar="P", help="sda: most forward passes per row (default 20000)")
    p.add_argument("--deepfool-iterations", type=int, metavar="D",
                   help="spikefool: most DeepFool steps per outer loop (default 50)")
    p.add_argument("--surrogate", choices=("model", "pdsg"),
                   help="g2s-rsf, g2s, sda: surrogate gradient of the attack's backward passes: the model's own "
                        "(default; sda: pdsg) or PDSG (a Gaussian of the membrane potential, sigma per row)")
    p.add_argument("--retime-budget", metavar="KIND:N", help="retime: inf:D (each spike moves <= D steps; default "
                   "inf:1), l1:N (total shift <= N steps) or l0:N (at most N spikes moved)")
    p.add_argument("--n", type=int, metavar="N", help="attack the first N test samples (default all)")
    p.add_argument("--seed", type=int, help="seed of the per-sample generators (default 0)")
    p.add_argument("--queries", type=int, metavar="Q", help="sparse-rs, pointwise: most oracle queries per row "
                   "(default 1000)")
    p.add_argument("--p-init", type=float, metavar="P", help="sparse-rs: initial share of the K flips resampled "
                   "per query, in (0, 1] (default 0.3)")
    p.add_argument("--oracle", metavar="KIND", help="sparse-rs, pointwise: what answers the queries: twin (the "
                   "network in torch, proven equal to the device; default) or device (a warm session on --profile)")
    p.add_argument("--profile", metavar="NAME", help="sparse-rs, pointwise: the hardware profile whose answers "
                   "the oracle gives (default loihi2-fixed); g2s-rsf, g2s, rsf: put the profile's [input_filter] "
                   "in front of the network, its gradient passed straight through (BPDA; docs/defences.md)")
    p.add_argument("--non-adaptive", action="store_true", help="g2s-rsf, g2s, rsf with --profile: attack the bare "
                   "network, ignoring the profile's filter (its replay on the profile applies the filter)")
    p.add_argument("--match", metavar="ID", help="with --method random: the attack id in this run whose "
                   "per-sample L0 the random flips copy")
    p.add_argument("--transfer-from", metavar="FILE.h5", help="judge the adversarial set of FILE.h5 (an attack "
                   "file of another run) on this run's model instead of attacking (method transfer)")
    p.add_argument("--import-set", metavar="FILE.npz", help="judge an adversarial set made elsewhere: keys spikes, "
                   "indices (rows of the test split) or labels, optional targets and name (method imported; "
                   "docs/attacks.md)")
    p.add_argument("--batch-size", type=int, default=128, help="samples per batched pass (default 128; "
                   "results do not depend on it)")
    p.add_argument("--data", default=None, metavar="PATH", help="N-MNIST directory, if it moved since training")
    p.add_argument("--force", action="store_true", default=False, help="recompute even if the attack file exists")
    p.add_argument("--no-progress", action="store_true", default=False, help="hide the progress bar")
    add_threads(p)
    add_torch_device(p)
    p.set_defaults(func=cmd_attack)


#: Options of ``harness attack`` that are an attack's settings (checked against the method's).
ATTACK_SETTINGS = ("targeted", "iterations", "gamma", "eta", "reduce", "max_flips", "max_flip_rate", "budget_mode",
                   "threshold_mode", "rsf_trigger_ratio", "attack_threshold", "loss", "energy_target",
                   "energy_objective", "threat", "max_passes", "surrogate", "deepfool_iterations", "n", "seed", "match", "transfer_from", "queries",
                   "p_init", "oracle", "profile", "import_set", "retime_budget", "non_adaptive")


def cmd_attack(args: argparse.Namespace) -> int:
    from .attacks import AttackRecord, format_summary
    from .attacks.interface import Job
    from .attacks.registry import get
    from .store import run_lock

    given = vars(args)
    default = "transfer" if "transfer_from" in given else "imported" if "import_set" in given else "g2s-rsf"
    method = get(given.get("method", default))
    values = {key: given[key] for key in ATTACK_SETTINGS if key in given}
    method.check(values)
    job = Job(args.run, batch_size=args.batch_size, force=args.force, progress=not args.no_progress,
              data_path=args.data, device=args.torch_device)
    # a second attack on this run directory is refused (a `harness run` study calls the stage in-process
    # and holds its own lock); a missing directory is left to the method's own error, not created here
    with run_lock(args.run, "harness attack") if Path(args.run).is_dir() else contextlib.nullcontext():
        path = method.run(job, values)
    print(format_summary(AttackRecord.load(path), path))
    return 0


# ---------------------------------------------------------------- ann
def add_ann(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ann", help="compare the SNN with its ANN twin (FGSM/BIM/PGD, transfer both ways)",
                       description="Train (or reuse) an ANN with the SNN's architecture on spike rates, attack it "
                                   "with FGSM/BIM/PGD (L-infinity) and transfer examples both ways. Writes "
                                   "RUN_DIR/ann/model.pt and RUN_DIR/ann/comparison_<id>.json.")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory with a trained SNN")
    p.add_argument("--snn-attack", metavar="ID", help="an SNN attack id in RUN_DIR/attacks/ to transfer to the "
                   "ANN and to compare at equal L0")
    p.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2],
                   help="L-infinity budgets (default 0.02 0.05 0.1 0.2)")
    p.add_argument("--eps-scale", choices=("absolute", "mean-rate"), default="absolute",
                   help="eps in rate units (absolute, default) or times the test inputs' mean spike rate "
                        "(mean-rate; for N-MNIST, whose rates are small)")
    p.add_argument("--seed", type=int, default=0, help="seed of the ANN's training and the PGD start (default 0)")
    p.add_argument("--code-seed", type=int, default=0, help="seed of the Bernoulli coding of rates for the SNN")
    p.add_argument("--epochs", type=int, help="ANN training epochs (default: the SNN spec's)")
    p.add_argument("--n", type=int, metavar="N", help="use the first N test samples (default all)")
    p.add_argument("--data", metavar="PATH", help="N-MNIST directory, if it moved since training")
    p.add_argument("--force", action="store_true", help="recompute even if the comparison file exists")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_threads(p)
    p.set_defaults(func=cmd_ann)


def cmd_ann(args: argparse.Namespace) -> int:
    from .attacks.ann import ann_comparison, format_comparison

    path, result = ann_comparison(args.run, snn_attack=args.snn_attack, eps=args.eps, eps_scale=args.eps_scale,
                                  seed=args.seed, code_seed=args.code_seed, epochs=args.epochs, n=args.n,
                                  force=args.force, progress=not args.no_progress, data_path=args.data)
    print(format_comparison(result))
    print(f"  file: {path}")
    return 0


# ---------------------------------------------------------------- replay
def add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay clean or adversarial spikes on a hardware profile (Lava)",
                       description="Run a netx network on Lava's Loihi 2 simulation. Run form: "
                                   "--run RUN_DIR --profile NAME [--clean | --attack ID] writes "
                                   "RUN_DIR/device/<profile>/<clean|ID>.h5 and prints the on-device "
                                   "measurements. Stand-alone form: --network FILE.net --input SPIKES "
                                   "--profile NAME --out OUT.h5 (spikes (N, C, T) or (N, C, H, W, T)). "
                                   "An existing output made from the same network, profile and inputs is kept.")
    p.add_argument("--profile", required=True, help="hardware profile: a name in hw_profiles/ (e.g. "
                   "loihi2-fixed, loihi2-float, loihi2-noisy) or a path to a .toml profile")
    p.add_argument("--run", metavar="RUN_DIR", help="run directory with a trained model (run form)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--clean", action="store_true", help="replay the run's clean test split (the default)")
    which.add_argument("--attack", metavar="ID", help="replay the adversarial set RUN_DIR/attacks/ID.h5")
    which.add_argument("--all", action="store_true", help="replay the clean test split and every attack set "
                       "of the run (what `harness report` summarises)")
    p.add_argument("--data", metavar="PATH", help="N-MNIST directory, if it moved since training (run form)")
    p.add_argument("--network", metavar="FILE.net", help="netx HDF5 network (stand-alone form)")
    p.add_argument("--input", metavar="SPIKES", help="binary spikes (N, C, T) or (N, C, H, W, T) in a .npy "
                   "file or an .h5 file (stand-alone form)")
    p.add_argument("--dataset", default="spikes", help="dataset of an .h5 --input (default: spikes)")
    add_binning(p, "time steps to bin an event --input into", "bin width in milliseconds for an event --input "
                "(default 1)")
    p.add_argument("--labels", metavar="LABELS.npy", help="true classes of the --input samples (stand-alone form): "
                   "stored in the output and counted in the printed accuracy")
    p.add_argument("--out", metavar="OUT.h5", help="output file (stand-alone form)")
    p.add_argument("--lanes", type=int, metavar="B", help="samples replayed side by side in one run "
                   "(default: from the network size and free memory)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="watchdog timeout of the Lava run "
                   "(default: ten times the expected run time, at least 120 s)")
    p.add_argument("--force", action="store_true", help="replay even if an up-to-date output exists")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_sample_mode(p)
    add_threads(p)
    p.set_defaults(func=cmd_replay)


def add_sample_mode(p: argparse.ArgumentParser) -> None:
    """``--sample-mode fresh|interval`` (docs/device.md, "Bias")."""
    p.add_argument("--sample-mode", choices=["fresh", "interval"], default="fresh",
                   help="how samples meet the network: fresh (default) = each as on a freshly loaded netx "
                        "network with netx's defaults (what lava-dl's tests compare against); interval = "
                        "streamed through one loaded network with netx's reset_interval = T")


def cmd_replay(args: argparse.Namespace) -> int:
    from .fmt import pct
    from .device.profiles import load_profile
    from .errors import ConfigError
    from .stages.replay import energy_summary, format_summary, replay_file, replay_run, replay_summary
    from .store import read_h5

    standalone = (args.network, args.input, args.out)
    if args.run is None and not all(standalone):
        raise ConfigError("give --run RUN_DIR, or all of --network, --input and --out")
    if args.run is not None and any(standalone):
        raise ConfigError("--run cannot be combined with --network, --input or --out")
    if args.lanes is not None and args.lanes < 1:
        raise ConfigError(f"--lanes must be >= 1, got {args.lanes}")
    if args.timeout is not None and args.timeout <= 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    options = {"lanes": args.lanes, "timeout": args.timeout, "force": args.force, "progress": not args.no_progress,
               "sample_mode": args.sample_mode}
    profile = load_profile(args.profile)
    if args.run is None:
        out, output = replay_file(args.network, args.input, profile, args.out, dataset=args.dataset,
                                  binning=binning_of(args),
                                  labels=args.labels, **options)
        if output is None:
            print(f"{out} is up to date (same network, profile and input)")
        else:
            print(f"{len(output)} samples replayed on {output.profile.name} ({output.sample_mode} samples) in "
                  f"{output.wall_seconds:.1f} s ({output.lanes} lanes): {out}")
        if args.labels:
            arrays, _ = read_h5(out, kind="device")
            correct = int((arrays["predictions"] == arrays["labels"]).sum())
            print(f"device accuracy {pct(correct / len(arrays['labels']))} ({correct} of {len(arrays['labels'])}; "
                  "a tie or silence is wrong)")
        return 0
    from .runs import open_run

    run = open_run(args.run)
    if run.checkpoint.exists():  # the summaries judge with it: a refused checkpoint stops before any replay
        run.net
    for attack_id in [None, *run.attack_ids()] if args.all else [args.attack]:
        path = replay_run(args.run, profile, attack_id, data_path=args.data, **options)
        print(format_summary(replay_summary(args.run, profile, attack_id, data_path=args.data),
                             profile.name, attack_id))
        if attack_id is not None and profile.chip is not None and open_run(args.run).attack(attack_id).is_energy:
            e = energy_summary(args.run, profile, attack_id)
            print(f"  energy per inference x{e['change']['energy_j']:.3f} (rise {pct(e['energy_rise'])}), synops "
                  f"x{e['change']['synops']:.3f}, busiest core x{e['change']['busiest_core_load']:.3f}, latency proxy "
                  f"x{e['change']['latency_proxy']:.3f}; predictions kept {pct(e['prediction_kept'])}")
        print(f"device output: {path}")
    return 0


# ---------------------------------------------------------------- map
def add_map(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="map a network onto a profile's neurocores and print the table",
                       description="Partition every layer of a netx network into the cores of the profile's "
                                   "[chip] table (neurons, synaptic memory and fan-in per core), place them on "
                                   "the mesh in layer order and print cores per layer, neurons, synapses, "
                                   "memory use, fan-in and utilisation. See docs/device.md, 'Neurocore mapping'.")
    p.add_argument("--profile", required=True, help="hardware profile with a [chip] table: a name in "
                   "hw_profiles/ (e.g. loihi1, loihi2-fixed) or a path to a .toml profile")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", metavar="RUN_DIR", help="run directory with a trained model")
    which.add_argument("--network", metavar="FILE.net", help="netx HDF5 network")
    p.add_argument("--input-shape", type=int, nargs="+", metavar="N",
                   help="with --network: input frame shape, C or C H W (needed when the file has no Input "
                        "layer and starts with a conv layer)")
    p.set_defaults(func=cmd_map)


def cmd_map(args: argparse.Namespace) -> int:
    from .device.mapping import format_mapping, map_network
    from .device.netx_reader import read_network
    from .device.profiles import load_profile
    from .errors import ConfigError
    from .runs import open_run

    profile = load_profile(args.profile)
    if profile.chip is None:
        raise ConfigError(f"profile '{profile.name}' ({profile.path}) has no [chip] table to map onto")
    if args.run is not None:
        run = open_run(args.run)
        network_file = run.network_file
        shape = run.card.get("spec", {}).get("data", {}).get("input_shape")  # None: from the file
        input_shape = tuple(shape) if shape else None
    else:
        network_file, input_shape = args.network, tuple(args.input_shape) if args.input_shape else None
    print(format_mapping(map_network(read_network(network_file, input_shape), profile.chip), profile.name))
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
    for add in (add_train, add_import, add_export, add_attack, add_ann, add_replay, add_map, add_evaluate, add_report, add_run,
                add_compare):  # data-flow order
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_imports()
    args = build_parser().parse_args(argv)
    try:
        with sigterm_as_interrupt():  # SIGTERM unwinds like Ctrl-C: every finally runs
            if hasattr(args, "threads"):
                set_threads(args)
            return args.func(args)
    except HarnessError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted; finished artifacts are kept, rerun to resume",
              file=sys.stderr)
        return 130
