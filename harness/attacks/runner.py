"""Attacks on a run directory: ``RUN_DIR/attacks/<id>.h5`` and the one-screen summary.

The id encodes every setting; the file also stores its identity, a digest of everything it was
made from (the model checkpoint's bytes, the attacked spikes and labels exactly as fed to the
model, the settings, the versions of the packages that change numbers: :mod:`harness.store`,
``cached``), so re-running the same attack on the same model and data returns the existing
file, and anything else recomputes it (unless ``force``). A file is written once, at the end,
through :func:`harness.store.write_h5` (temporary name + rename); SIGINT or SIGTERM during an
attack leaves nothing behind, and rerunning the command starts that attack again.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..fmt import num as fmt_count, pct as fmt_pct
from ..records import DEFAULT_BUDGETS, AttackRecord
from ..runs import Run, data_digest, open_run
from ..signals import sigterm_as_interrupt
from .threats import THREAT_TAGS
from ..store import cached, check_writable, digest_file, identity, stored_identity
from ..train import output_counts
from ..versions import numeric_versions
from .baselines import random_flips
from .energy import is_energy_loss, random_energy_record
from .filtered import through_filter
from .loop import AttackConfig, craft
from .targets import TARGET_MODES, expand_targets
from .transfer import transfer

_MODE_TAGS = {None: "u", "every-other": "eo", "random": "rt", "least-likely": "ll"}
#: The default attack loss of an imported network (:func:`default_loss`).
IMPORTED_LOSS = "margin"
_LOSS_TAGS = {"spike-rate": "sr", "cross-entropy": "ce", "margin": "mg", "energy": "en", "energy-stealthy": "ens"}


def _num(value: float) -> str:
    """A short, filesystem-safe number: 0.05, 1, 1e-05."""
    return f"{value:g}".replace("+", "")


def attack_id(config: AttackConfig, targeted: str | None, n: int, loss: str) -> str:
    """The file id of an attack: every setting, short and filesystem-safe.

    Example: ``g2s-rsf_u_k25_g0.05_e1_sr_n100_s0``; optional parts: ``red`` (reduction),
    ``b<flips>`` or ``r<rate>`` (budget), ``bt`` (budget_mode "truncate"), ``th<threshold>``
    (attack-time threshold), ``fs`` (threshold_mode "fixed-surrogate"), ``rz<ratio>``
    (rsf_trigger_ratio > 0), ``et<ratio>`` (energy_target), ``syn`` (energy_objective "synops"), ``add``/``del`` (threat add-only/delete-only), ``pdsg`` (surrogate). Defaults add nothing, so existing ids stay valid.

    Args:
        loss: the resolved loss name (the model's training loss when the config has none).
    """
    parts = [config.method, _MODE_TAGS[targeted], f"k{config.iterations}", f"g{_num(config.gamma)}",
             f"e{_num(config.eta)}"]
    parts += ["red"] if config.reduce else []
    parts += [f"b{config.max_flips}"] if config.max_flips is not None else []
    parts += [f"r{_num(config.max_flip_rate)}"] if config.max_flip_rate is not None else []
    parts += ["bt"] if config.budget_mode == "truncate" else []
    parts += [f"th{_num(config.attack_threshold)}"] if config.attack_threshold is not None else []
    parts += ["fs"] if config.threshold_mode == "fixed-surrogate" else []
    parts += [f"rz{_num(config.rsf_trigger_ratio)}"] if config.rsf_trigger_ratio > 0 else []
    parts += [f"et{_num(config.energy_target)}"] if config.energy_target is not None else []
    parts += ["syn"] if config.energy_objective == "synops" else []
    parts += [THREAT_TAGS[config.threat]] if THREAT_TAGS[config.threat] else []
    parts += [config.surrogate] if config.surrogate != "model" else []
    return "_".join(parts + [_LOSS_TAGS[loss], f"n{n}", f"s{config.seed}"])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")[:40] or "run"


def default_loss(run: Run) -> str:
    """The attack loss when the settings name none: the model's training loss, or for an imported
    network (which brings no training loss) the margin objective on output spike counts."""
    return IMPORTED_LOSS if run.imported else run.spec.training["loss"]


def _identity(run: Run, **parts) -> str:
    """An attack file's identity: the judging model, the package versions and ``parts``."""
    return identity(stage="attack", model_sha256=run.model_digest, versions=numeric_versions(), **parts)


# ------------------------------------------------------------------ the three entry points
def run_attack(run_dir: str | Path, config: AttackConfig = AttackConfig(), targeted: str | None = None,
               n: int | None = None, batch_size: int = 128, force: bool = False, progress: bool = True,
               data_path=None, device: str = "cpu", method: str | None = None, threat: str = "flips",
               input_filter=None) -> Path:
    """Attack the run's model on its test split and write ``RUN_DIR/attacks/<id>.h5``.

    Args:
        run_dir: a run directory with a trained model (``harness train``).
        config: the attack settings.
        targeted: None (untargeted) or a target mode: every-other, random, least-likely.
        n: attack the first ``n`` test samples (default all).
        batch_size: rows per pass (results do not depend on it).
        force: recompute even when the file exists for the same settings, model and data.
        data_path: N-MNIST directory when it moved since training (default: the card's).
        device: torch device of the passes ("cpu" or "cuda"; CUDA's spikes are not the CPU's
            bits, so a CUDA file has another identity and replaces a CPU one of the same id).
        method: the registry name stored as the record's ``method`` (default: ``config.method``).
        threat: the threat model stored as the record's ``threat``.
        input_filter: a profile's event filter (:class:`harness.device.input_filter.InputFilter`) put in
            front of the network for every pass, its gradient passed straight through (BPDA,
            :mod:`harness.attacks.filtered`); None: the bare network. Part of the id (``f<kind><window>``)
            and the identity.
    Returns:
        The path of the attack file (existing or new).
    """
    if targeted not in _MODE_TAGS:
        raise ConfigError(f"unknown target mode '{targeted}'; available: {', '.join(TARGET_MODES)}")
    if targeted is not None and is_energy_loss(config.loss):
        raise ConfigError(f"the energy loss '{config.loss}' is untargeted: it cannot be combined with --targeted")
    run = open_run(run_dir)
    net, data = run.net, run.test(n, data_path)
    loss = config.loss or default_loss(run)
    name = attack_id(config, targeted, len(data), loss)
    path = run.attack_path(name if input_filter is None else f"{name}_f{input_filter.tag}")
    params = {**config.to_dict(), "loss": loss, "targeted": targeted or "", "n": len(data),
              **({} if input_filter is None else {"input_filter": input_filter.to_dict()})}
    ident = _identity(run, params=params, data_sha256=data_digest(data),
                      **({} if device == "cpu" else {"torch_device": device}))

    def compute() -> None:
        with through_filter(net, input_filter):
            counts = output_counts(net, data.spikes) if targeted == "least-likely" else None
            index = np.arange(len(data))
            rows, targets = expand_targets(targeted, data.labels, net.spec.n_classes, index, config.seed, counts)
            record = craft(net, data.spikes[rows], data.labels[rows], config, targets=targets,
                           sample_index=index[rows], batch_size=batch_size, progress=progress, device=device)
        _attrs(record, path.stem, params, run, data.metadata(), ident, method=method, threat=threat).save(path)

    _cached_attack(path, ident, compute, force)
    return path


def run_random_baseline(run_dir: str | Path, reference: str, seed: int | None = None, batch_size: int = 128,
                        force: bool = False, progress: bool = True, data_path=None) -> Path:
    """Random flips at the per-row L0 of the attack ``reference`` (an id in the same run).

    Rows where the reference failed get no flips; the flips honour the reference's threat. For an energy attack (rows "succeed" by
    activity, not by fooling the model) every attacked row gets its final L0 and keeps its flipped
    example (:func:`harness.attacks.energy.random_energy_record`). Writes ``attacks/random_s<seed>_<reference>.h5``,
    whose identity includes the reference file's own.
    """
    run = open_run(run_dir)
    ref = run.attack(reference)
    seed = int(ref.attrs.get("seed", 0)) if seed is None else seed
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    path = run.attack_path(f"random_s{seed}_{reference}")
    params = {"seed": seed, "reference": reference}
    ident = _identity(run, params=params, reference=stored_identity(run.attack_path(reference))
                      or digest_file(run.attack_path(reference)))

    def compute() -> None:
        if ref.is_energy:
            record = random_energy_record(run.net, ref, seed, batch_size)
        else:
            record = random_flips(run.net, ref.clean, ref.labels, ref.l0 * ref.success, seed, ref.targets,
                                  ref.sample_index, batch_size, threat=ref.attrs.get("threat", "flips"))
        _attrs(record, path.stem, params, run, ref.attrs.get("dataset", {}), ident,
               targeted=ref.attrs.get("targeted", ""), threat=ref.attrs.get("threat", "flips")).save(path)

    _cached_attack(path, ident, compute, force)
    return path


def run_transfer(run_dir: str | Path, source: str | Path, batch_size: int = 256, force: bool = False) -> Path:
    """Judge the adversarial set in ``source`` (an attack file of another run) on this run's model.

    Writes ``RUN_DIR/attacks/<source id>_from_<source run>-<hash>.h5`` with success,
    predictions and correct_before recomputed here and ``crafted_on`` naming the source run;
    its identity includes the source file's bytes.
    """
    source = Path(source)
    if not source.exists():
        raise DataError(f"--transfer-from {source}: file not found")
    src = AttackRecord.load(source)
    src_run = source.resolve().parent.parent
    tag = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:6]
    run = open_run(run_dir)
    path = run.attack_path(f"{source.stem}_from_{_slug(src_run.name)}-{tag}")
    params = {**src.attrs.get("params", {}), "transfer_from": str(source.resolve())}
    ident = _identity(run, params=params, source_sha256=digest_file(source))

    def compute() -> None:
        record = transfer(src, run.net, batch_size)
        _attrs(record, path.stem, params, run, src.attrs.get("dataset", {}), ident,
               crafted_on=src.attrs.get("crafted_on", str(src_run))).save(path)

    _cached_attack(path, ident, compute, force)
    return path


def _cached_attack(path: Path, ident: str, compute, force: bool) -> None:
    """Keep ``path`` when it has identity ``ident``, else compute it: the folder checked writable before
    any work (a kept file needs no write), SIGTERM unwinding like Ctrl-C (no temporary file stays)."""
    def checked() -> None:
        check_writable(path.parent)
        compute()

    with sigterm_as_interrupt():
        cached(path, ident, checked, force=force)


def _attrs(record: AttackRecord, name: str, params: dict, run: Run, dataset: dict, ident: str,
           targeted: str | None = None, crafted_on: str | None = None, method: str | None = None,
           threat: str = "flips") -> AttackRecord:
    """The record with the file's root attributes (docs/artifacts.md); ``method`` the registry name
    (default: the record's own), ``threat`` its threat model."""
    model = run.spec.name
    if record.forward_passes is None:  # a baseline or transfer set: one judging pass per row
        rows = len(record)
        record = replace(record, forward_passes=np.ones(rows, np.int64), backward_passes=np.zeros(rows, np.int64),
                         queries=np.zeros(rows, np.int64))
    return record.with_attrs(
        attack_id=name, method=method or record.attrs["method"], threat=threat,
        targeted=params.get("targeted", "") if targeted is None else targeted,
        params=params, model=model, model_digest=run.model_digest[:16], dataset=dataset,
        crafted_on=crafted_on or f"{run.root.resolve()} ({model})",
        judged_on=f"{run.root.resolve()} ({model})", identity=ident)


# ------------------------------------------------------------------ summary
def format_summary(record: AttackRecord, path: str | Path | None = None, budgets=DEFAULT_BUDGETS) -> str:
    """A one-screen text summary of an attack record (aggregates over correctly classified rows)."""
    s = record.stats(budgets)
    a = record.attrs
    lines = [f"attack {a.get('attack_id', a.get('method'))} on {a.get('model', '?')}"]
    if a.get("crafted_on") and a.get("crafted_on") != a.get("judged_on"):
        lines.append(f"  crafted on {a['crafted_on']}, judged on {a.get('judged_on')}")
    lines += [
        f"  rows {s['n_rows']} ({s['n_samples']} samples, {a.get('targeted') or 'untargeted'}); "
        f"classified correctly before: {s['n_correct_before']} (others are not counted)",
        f"  success {s['n_success']}/{s['n_correct_before']} = {fmt_pct(s['success_rate'])}",
        f"  L0 of successes: mean {fmt_count(s['mean_l0'])}, median {fmt_count(s['median_l0'])} flips "
        f"(median flip rate {fmt_pct(s['median_flip_rate'], small=True)} of {record.numel:,} elements)",
    ]
    if a.get("params", {}).get("reduce"):
        lines.append(f"  L0 before reduction: median {fmt_count(s['median_l0_before_reduction'])} flips")
    if record.spikes_moved is not None:
        lines.append(_retime_line(record))
    gradients = (record.zero_grad_iterations >= 0).any()
    lines.append(f"  iterations: mean {s['mean_iterations']:.2f}; RSF iterations {s['rsf_iterations']}"
                 + (f"; all-zero gradients {s['zero_grad_iterations']}" if gradients else ""))
    lines.append(_failure_line(s))
    if record.is_energy:
        lines += _energy_lines(record.energy_stats())
    else:
        lines.append("  success by budget: " + "  ".join(f"{b}: {fmt_pct(r)}" for b, r in s["success_by_budget"].items()))
        lines.append("  " + _curve_note(s["budget_curve"]))
    if record.is_query:
        lines += _query_lines(record.query_stats())
    if "per_target" in s:
        lines.append("  target  pairs  success  median L0")
        lines += [f"  {t:>6}  {v['n']:>5}  {fmt_pct(v['success_rate']):>7}  {fmt_count(v['median_l0']):>9}"
                  for t, v in s["per_target"].items()]
    if path is not None:
        lines.append(f"  file: {path}")
    return "\n".join(lines)


def _energy_lines(e: dict) -> list[str]:
    """An energy record's activity ratios (hidden-layer synops, adversarial / clean, SLAYER)."""
    target = f"reached x{e['energy_target']:g}" if e["energy_target"] is not None else "ratio > 1"
    return [f"  energy: activity ratio mean x{e['mean_activity_ratio']:.3f}, median x{e['median_activity_ratio']:.3f} "
            f"({e['objective']} vs clean); success ({target}) {e['n_success']}/{e['n_correct_before']}; "
            f"prediction kept {e['n_prediction_kept']}/{e['n_correct_before']}",
            "  mean activity ratio by budget: " + "  ".join(f"{b}: x{r:.3f}" for b, r in e["activity_by_budget"].items())]


def _query_lines(q: dict) -> list[str]:
    """A query attack's cost: median queries of its successes and its success against queries."""
    low, high = q["median_queries_ci"]
    median = (f"median {fmt_count(q['median_queries'])} [{fmt_count(low)}, {fmt_count(high)}] (bootstrap 95%)"
              if q["n_success"] else "no success")
    return [f"  queries ({q['oracle']} oracle, {q['profile'] or 'loihi2-fixed'}; at most {q['query_budget']:,} "
            f"per row): {median} over the {q['n_success']} successes",
            "  success by queries: " + "  ".join(f"<={b:,}: {k}/{n}" for b, (k, n) in q["success_by_queries"].items())]
def _retime_line(record: AttackRecord) -> str:
    """A retiming record's moves: median spikes moved and total shift over the successful rows."""
    won = record.success & record.correct_before

    def median(values: np.ndarray) -> str:
        return fmt_count(float(np.median(values[won])) if won.any() else float("nan"))

    return (f"  retiming {record.attrs.get('retime_budget', '')}: median spikes moved {median(record.spikes_moved)}, "
            f"median total shift {median(record.total_shift)} steps (successes; every channel keeps its spike count)")


def _failure_line(s: dict) -> str:
    """Failed rows: how many stalled (no change of prediction/margin) and how many saw a zero gradient."""
    parts = [f"  failed rows {s['n_failed']}"]
    if s["stalled_rows"] is not None:
        parts.append(f"stalled {s['stalled_rows']} ({fmt_pct(s['stalled_share'])}; no change of prediction "
                     f"or count margin over the last {s['stall_window']} iterations)")
    if s["zero_grad_share"] is not None:
        parts.append(f"with an all-zero gradient {fmt_pct(s['zero_grad_share'])}")
    return "; ".join(parts)


def _curve_note(curve: dict) -> str:
    """What the success-by-budget curve is (final L0 of one run, and the budget the run enforced)."""
    enforced = curve.get("enforced_budget")
    note = "(curve: final L0 of this one run, not one run per budget"
    if enforced is not None:
        note += f"; the run enforced {enforced:,} flips, budget_mode {curve.get('budget_mode')}"
    return note + ")"
