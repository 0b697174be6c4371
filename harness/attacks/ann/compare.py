"""SNN vs ANN: the same architecture as an ANN on spike rates, its attacks, and transfer both ways.

../shared/notes/attack-spec.md, "Influence factors" and its N-MNIST caveats:
- the ANN twin has the SNN's layers (dense, strided conv, flatten) with ReLU; its input is the
  spike rate over time, spikes.mean(-1), in [0, 1]; it trains on the same data (rate-coded
  data is re-drawn every epoch, as the SNN's training does);
- white box: FGSM, BIM and PGD in L-infinity at eps in {0.02, 0.05, 0.1, 0.2}; on N-MNIST the
  event rates are tiny (mean about 0.04), so eps can be given relative to the data's mean rate
  (``eps_scale="mean-rate"``);
- equal L0: every ANN perturbation is also reported as the number of events it amounts to,
  T * sum|delta rate| (one flipped event changes a rate by 1/T), next to the SNN's success at
  that many flips (from an SNN attack record);
- black box both ways: SNN adversarial spikes -> the ANN as rates; ANN adversarial rates -> the
  SNN after seeded Bernoulli rate coding, against the SNN's accuracy on clean rates coded the
  same way (the coding itself costs accuracy on event data: it destroys the timing).
Success is counted over samples the attacked model classified correctly before the attack.

Files: ``RUN_DIR/ann/model.pt`` (the trained twin, :mod:`.model`) and
``RUN_DIR/ann/comparison_<id>.json`` (the numbers), both written atomically and reused only when
their identity (model, data, settings, versions) matches.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ...data.digits import rate_code
from ...errors import ConfigError
from ...fmt import num as fmt_count, pct as fmt_pct
from ...metrics import predict
from ...models import SpikingNetwork
from ...runs import data_digest, open_run
from ...store import cached, identity, read_json, write_json
from ...train import load_split, output_counts
from ...versions import numeric_versions
from ...records import AttackRecord, is_success
from .bim import STEP_FACTOR, STEPS, bim
from .fgsm import fgsm
from .model import RateANN, ann_predict, load_or_train, spike_rates
from .pgd import pgd

DEFAULT_EPS = (0.02, 0.05, 0.1, 0.2)
EPS_SCALES = ("absolute", "mean-rate")
ATTACKS: dict[str, Callable] = {"fgsm": fgsm, "bim": bim, "pgd": pgd}


# ------------------------------------------------------------------ the comparison
def _eps_values(eps, scale: str, test_rates: np.ndarray) -> list[tuple[float, float]]:
    """(eps as given, eps in rate units) pairs."""
    if scale not in EPS_SCALES:
        raise ConfigError(f"unknown eps scale '{scale}'; available: {', '.join(EPS_SCALES)}")
    unit = float(test_rates.mean()) if scale == "mean-rate" else 1.0
    if any(e <= 0 for e in eps):
        raise ConfigError(f"eps values must be > 0, got {list(eps)}")
    return [(float(e), float(e) * unit) for e in eps]


def _rate(flags: np.ndarray) -> float:
    return float(flags.mean()) if flags.size else float("nan")


def _snn_on_coded(net: SpikingNetwork, rates: np.ndarray, seed: int) -> np.ndarray:
    """SNN predictions on rates Bernoulli-coded over the SNN's T steps with ``seed``."""
    return predict(output_counts(net, rate_code(rates, net.spec.steps, seed)))


def _white_box(model: RateANN, net: SpikingNetwork, rates: np.ndarray, labels: np.ndarray, eps_pairs, seed: int,
               code_seed: int, snn_record: AttackRecord | None, progress: bool) -> list[dict[str, Any]]:
    """White-box ANN attacks and their transfer to the SNN after rate coding, per method and eps."""
    x, y = torch.as_tensor(rates), torch.as_tensor(labels)
    ann_ok = ann_predict(model, rates) == labels
    snn_coded_ok = _snn_on_coded(net, rates, code_seed) == labels
    untargeted = np.full(len(labels), -1)
    steps = net.spec.steps
    rows = []
    for name, attack in tqdm([(n, a) for n, a in ATTACKS.items()], desc="ANN attacks", disable=not progress):
        for eps, eps_abs in eps_pairs:
            extra = {"generator": torch.Generator().manual_seed(seed)} if name == "pgd" else {}
            adv = attack(model, x, y, eps_abs, **extra).numpy()
            ann_pred = ann_predict(model, adv)
            fooled = (ann_pred != labels) & ann_ok
            events = np.rint(np.abs(adv - rates).reshape(len(rates), -1).sum(1) * steps)
            snn_pred = _snn_on_coded(net, adv, code_seed)
            row = {"method": name, "eps": eps, "eps_rate": eps_abs,
                   "ann_accuracy": _rate(ann_pred == labels),
                   "ann_success_rate": _rate(fooled[ann_ok]),
                   "median_equivalent_events": float(np.median(events[fooled])) if fooled.any() else float("nan"),
                   "to_snn": {"accuracy": _rate(snn_pred == labels),
                              "success_rate": _rate(is_success(snn_pred, labels, untargeted)[snn_coded_ok])}}
            if snn_record is not None and fooled.any():
                budget = int(round(row["median_equivalent_events"]))
                row["snn_success_at_equal_l0"] = snn_record.stats(budgets=(budget,))["success_by_budget"][budget]
            rows.append(row)
    return rows


def _snn_to_ann(model: RateANN, record: AttackRecord) -> dict[str, Any]:
    """The SNN's adversarial spikes shown to the ANN as rates (black box, SNN -> ANN)."""
    clean_pred = ann_predict(model, spike_rates(record.clean))
    adv_pred = ann_predict(model, spike_rates(record.adversarial))
    ann_ok = clean_pred == record.labels
    fooled = is_success(adv_pred, record.labels, record.targets) & ann_ok
    crafted = record.success & ann_ok
    return {"attack_id": record.attrs.get("attack_id"), "rows": len(record),
            "ann_accuracy_clean": _rate(ann_ok), "snn_success_rate": _rate(record.success[record.correct_before]),
            "ann_success_rate": _rate(fooled[ann_ok]), "transfer_rate": _rate(fooled[crafted]),
            "median_l0": float(np.median(record.l0[record.success])) if record.success.any() else float("nan")}


def ann_comparison(run_dir: str | Path, snn_attack: str | None = None, eps=DEFAULT_EPS, eps_scale: str = "absolute",
                   seed: int = 0, code_seed: int = 0, epochs: int | None = None, n: int | None = None,
                   force: bool = False, progress: bool = True, data_path=None) -> tuple[Path, dict[str, Any]]:
    """Train (or reuse) the ANN twin of the run's SNN and compare them; write the numbers.

    Args:
        run_dir: a run with a trained SNN.
        snn_attack: id of an SNN attack in ``RUN_DIR/attacks/`` to transfer to the ANN and to
            compare at equal L0 (optional).
        eps: L-infinity budgets, in rate units or relative to the mean rate (``eps_scale``).
        eps_scale: "absolute" or "mean-rate" (eps times the test inputs' mean spike rate).
        seed: ANN weights, shuffling and the PGD start; code_seed: Bernoulli coding of rates for the SNN.
        epochs: ANN training epochs (default: the SNN spec's).
        n: use the first ``n`` test samples.
    Returns:
        (path of ``RUN_DIR/ann/comparison_<id>.json``, its content).
    """
    run = open_run(run_dir)
    net, test = run.net, run.test(n, data_path)
    rates = spike_rates(test.spikes)
    eps_pairs = _eps_values(eps, eps_scale, rates)
    settings = {"snn_attack": snn_attack, "eps": [e for e, _ in eps_pairs], "eps_scale": eps_scale, "seed": seed,
                "code_seed": code_seed, "epochs": epochs, "n": len(test), "steps": STEPS, "step_factor": STEP_FACTOR}
    path = run.root / "ann" / f"comparison_{eps_scale}_s{seed}_c{code_seed}{'_' + snn_attack if snn_attack else ''}.json"
    record = run.attack(snn_attack) if snn_attack else None
    ident = identity(stage="ann-comparison", settings=settings, model_sha256=run.model_digest,
                     data_sha256=data_digest(test), versions=numeric_versions(),
                     snn_attack=None if record is None else record.attrs.get("identity"))

    def compute() -> None:
        started = time.perf_counter()
        train_set = load_split(net.spec, "train", run.data_path(data_path), seed=run.seed)
        model = load_or_train(run.root / "ann" / "model.pt", net.spec, train_set, seed, epochs, progress)
        snn_clean = predict(output_counts(net, test.spikes)) == test.labels
        write_json(path, {
            "settings": settings, "model": net.spec.name, "dataset": test.metadata(),
            "mean_rate": float(rates.mean()), "max_rate": float(rates.max()),
            "clean": {"snn_accuracy": _rate(snn_clean),
                      "snn_accuracy_rate_coded": _rate(_snn_on_coded(net, rates, code_seed) == test.labels),
                      "ann_accuracy": _rate(ann_predict(model, rates) == test.labels)},
            "ann_white_box": _white_box(model, net, rates, test.labels, eps_pairs, seed, code_seed, record, progress),
            "snn_to_ann": _snn_to_ann(model, record) if record is not None else None,
            "notes": ("ANN -> SNN examples are Bernoulli rate coded; compare their success with the SNN's accuracy "
                      "on clean inputs coded the same way (clean.snn_accuracy_rate_coded). On event data the "
                      "coding discards timing and the rates are small: read eps against mean_rate."),
            "seconds": round(time.perf_counter() - started, 2), "identity": ident,
        })

    cached(path, ident, compute, force=force)
    return path, read_json(path)


def format_comparison(result: dict[str, Any]) -> str:
    """A one-screen table of an :func:`ann_comparison` result."""
    c = result["clean"]
    lines = [f"SNN vs ANN on {result['model']} ({result['settings']['n']} test samples, mean rate "
             f"{result['mean_rate']:.3f})",
             f"  clean accuracy: SNN {fmt_pct(c['snn_accuracy'])} (on rate-coded inputs {fmt_pct(c['snn_accuracy_rate_coded'])}),"
             f" ANN {fmt_pct(c['ann_accuracy'])}",
             "  method  eps      eps(rate)  ANN acc  ANN success  events(median)  -> SNN acc  -> SNN success  SNN@same L0"]
    for r in result["ann_white_box"]:
        lines.append(f"  {r['method']:<6}  {r['eps']:<7g}  {r['eps_rate']:<9.4g}  {fmt_pct(r['ann_accuracy']):>7}  "
                     f"{fmt_pct(r['ann_success_rate']):>11}  {fmt_count(r['median_equivalent_events']):>14}  "
                     f"{fmt_pct(r['to_snn']['accuracy']):>9}  {fmt_pct(r['to_snn']['success_rate']):>13}  "
                     f"{fmt_pct(r.get('snn_success_at_equal_l0')):>11}")
    if result.get("snn_to_ann"):
        s = result["snn_to_ann"]
        lines.append(f"  SNN attack {s['attack_id']} (median L0 {fmt_count(s['median_l0'])}): SNN success "
                     f"{fmt_pct(s['snn_success_rate'])}; on the ANN: success {fmt_pct(s['ann_success_rate'])}, "
                     f"transfer rate {fmt_pct(s['transfer_rate'])}")
    return "\n".join(lines)
