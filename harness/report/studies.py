"""The canned studies' own table and figure (experiments/*.toml ``study = ...``).

Each study compares along one axis, from the runs' results (typed
:class:`harness.results_model.Results`; a results.json dict is parsed on the way in):

- ``methods``: attack methods on the same model (G2S+RSF, G2S, RSF, random flips);
- ``loss``: models trained with different losses, attacked alike;
- ``threshold``: the penultimate layer's threshold during the attack's gradient pass, per
  model variant (surrogate gradient, depth, loss): where gradients vanish and RSF is needed;
- ``device``: offline vs each hardware profile, for sets crafted on the deployed model and
  transfer sets crafted on another one;
- ``ann``: SNN vs ANN, white-box and black-box transfer both ways (``RUN_DIR/ann/``);
- ``paper``: the attack paper's table (untargeted/targeted at the trained and the raised
  attack-time threshold) beside the reference's numbers, with k/n and Wilson intervals.

../shared/notes/attack-spec.md, "Influence factors", describes what each reproduces.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..fmt import num, num_ci, pct, rate, undefined
from ..results import RunArtifacts
from ..aggregate import seed_groups
from ..results_model import AnnComparison, Attack, Rate, Results, as_results
from ..stats import fisher, wilson
from . import figures
from .render import Figure, Section, Table
from .sections import GradientUse, Labels, failure_cells

Runs = Mapping[str, "tuple[RunArtifacts, Results]"]


def _rows(runs: Runs):
    """(run name, run artifacts, results, attack entry) for every attack of every run."""
    for name, (art, results) in runs.items():
        for attack in results.attacks:
            yield name, art, results, attack


def zero_grad_share(art: RunArtifacts, attack: Attack) -> float | None:
    """Share of an attack's iterations with an all-zero input gradient (None: no gradient used)."""
    return GradientUse.of(art.attacks[attack.id]).zero_grad_share


def _success(attack: Attack) -> str:
    """An attack's offline success with its interval and counts."""
    return rate(attack.offline.success_rate_ci, attack.offline.success_rate)


def methods_study(runs: Runs, labels: Labels) -> Section:
    """Success vs budget of every attack method on each run, overlaid."""
    several = len(runs) > 1
    curves = {(f"{name}: " if several else "") + labels[a.id]:
              {"offline": a.offline.success_by_budget_ci or a.offline.success_by_budget} for name, _, _, a in _rows(runs)}
    budgets = next(iter(runs.values()))[1].budgets
    rows = [[name, labels[a.id], a.method, _success(a), num_ci(a.offline.median_l0_ci, a.offline.median_l0),
             *[rate(a.offline.success_ci_at(b), a.offline.success_at(b)) for b in budgets]]
            for name, _, _, a in _rows(runs)]
    table = Table(["run", "attack", "method", "success", "median L0", *[f"<= {b}" for b in budgets]], rows,
                  "Offline success (over correctly classified rows) at each flip budget, with Wilson 95% intervals "
                  "and counts; median L0 with its bootstrap 95% interval.")
    png = figures.budget_curves(curves, "Attack methods: success vs perturbation budget")
    return Section("Study: G2S+RSF vs G2S vs RSF vs random flips", [
        "Which part of the attack does the work? G2S turns the input gradient into spike flips; RSF flips at random "
        "where the gradient vanishes; RSF alone uses no gradient; random flips at the attack's own L0 show the "
        "effect of mere noise."], [table],
        [Figure("study-methods", png, "Offline attack success vs the number of flipped input spikes, one line per "
                "method, with Wilson 95% bands. A curve above the random-flip line is gradient information at work.")])


def loss_study(runs: Runs, labels: Labels) -> Section:
    """The same attacks on models trained with different losses."""
    attack_labels = list(dict.fromkeys(labels[a.id] for _, _, _, a in _rows(runs)))
    series = {f"{name} ({results.model.loss})": [
        next((a.offline.success_rate_ci or a.offline.success_rate for a in results.attacks if labels[a.id] == lab),
             None) for lab in attack_labels] for name, (_, results) in runs.items()}
    rows = [[name, results.model.loss, rate(results.clean.offline.accuracy_ci, results.clean.offline.accuracy),
             labels[a.id], _success(a), num_ci(a.offline.median_l0_ci, a.offline.median_l0),
             pct(zero_grad_share(art, a)), *failure_cells(a.offline), str(a.offline.rsf_iterations)]
            for name, art, results, a in _rows(runs)]
    table = Table(["run", "training loss", "clean acc.", "attack", "success", "median L0",
                   "all-zero gradients (iterations)", "stalled (of failed)", "all-zero gradient (of failed)",
                   "RSF iterations"], rows, "Attacks on models trained with each loss (offline); rates with Wilson 95% "
                                            "intervals and counts.")
    png = figures.grouped_bars(attack_labels, series, "Training loss vs attack success", "attack success (%)",
                               xlabel="attack")
    return Section("Study: training loss (spike rate vs cross-entropy)", [
        "The paper found cross-entropy training saturates the outputs, pushes membrane potentials out of the "
        "surrogate-gradient window and makes gradients vanish (the 'trap'). The share of all-zero gradients shows "
        "whether that happens here."], [table],
        [Figure("study-loss", png, "Offline success of each attack on models trained with each loss, with Wilson 95% "
                "error bars.")])


def trained_threshold(card: dict) -> float:
    """The penultimate layer's trained threshold (the spec's override, else the neuron's)."""
    neuron = card["spec"]["neuron"]
    return float(neuron.get("penultimate_threshold", neuron["threshold"]))


@dataclass
class _Cell:
    """One attack (by label) on one model variant, its seeds' rows pooled.

    ``success``, ``stalled`` and ``zero_grad``: (k, n) summed over the variant's seeds (rows
    of all seeds counted once each; stalled and all-zero gradient over the failed rows)."""

    variant: str
    label: str
    line: str                    # the method as a figure line: "g2s-rsf", "g2s-rsf near-zero", ...
    mode: str | None             # threshold_mode where the threshold is overridden, else None
    threshold: float
    trained: bool
    runs: list[str] = field(default_factory=list)
    success: list[int] = field(default_factory=lambda: [0, 0])
    stalled: list[int] = field(default_factory=lambda: [0, 0])
    zero_grad: list[int] = field(default_factory=lambda: [0, 0])
    rsf_iterations: int = 0

    def add(self, name: str, off) -> None:
        self.runs.append(name)
        _add(self.success, off.success_rate_ci)
        _add(self.stalled, off.stalled_share_ci)
        _add(self.zero_grad, off.zero_grad_share_ci)
        self.rsf_iterations += off.rsf_iterations or 0


def _add(total: list[int], rate_) -> None:
    if rate_ is not None:
        total[0] += rate_.k
        total[1] += rate_.n


def _line(attack: Attack) -> str:
    """An attack's method as a line of the threshold figure (the near-zero RSF trigger apart)."""
    return attack.method + (" near-zero" if attack.parameters.get("rsf_trigger_ratio") else "")


def _threshold_cells(runs: Runs, labels: Labels) -> list[_Cell]:
    """Every (model variant, attack label) of the study, its seeds pooled. A variant is a seed
    grid (:func:`harness.aggregate.seed_groups`, by content), named by :func:`_variant`; a run
    without other seeds is a variant of its own."""
    grouped = {name: names[0] for names in seed_groups({n: r for n, (_, r) in runs.items()}) for name in names}
    cells: dict[tuple[str, str], _Cell] = {}
    for name, art, _, a in _rows(runs):
        variant = f"{_variant(art.card)} ({_seedless(grouped[name]) if name in grouped else name})"
        trained = trained_threshold(art.card)
        th = a.parameters.get("attack_threshold")
        mode = None if th is None else a.parameters.get("threshold_mode", "scale-surrogate")
        cell = cells.setdefault((variant, labels[a.id]), _Cell(
            variant, labels[a.id], _line(a), mode, trained if th is None else float(th), th is None))
        cell.add(name, a.offline)
    return list(cells.values())


def _seedless(name: str) -> str:
    """A seed grid's name: its first run's name less a trailing ``-s<seed>``."""
    stem, _, seed = name.rpartition("-s")
    return stem if stem and seed.isdigit() else name


def _versus_trained(cell: _Cell, cells: list[_Cell]) -> str:
    """Fisher's exact test of a raised-threshold cell's success against the same method at the
    variant's trained threshold ("" for the trained cell itself or where either has no rows)."""
    base = next((c for c in cells if c.variant == cell.variant and c.line == cell.line and c.trained), None)
    if cell.trained or base is None or not cell.success[1] or not base.success[1]:
        return ""
    diff = cell.success[0] / cell.success[1] - base.success[0] / base.success[1]
    return f"{100 * diff:+.1f} pt, p = {fisher(*cell.success, *base.success):.2g}"


_LINE_STYLES = {"g2s-rsf": "-", "g2s": "--", "g2s-rsf near-zero": ":", "rsf": "-."}


def _threshold_series(cells: list[_Cell]) -> tuple[list[float], dict, dict, dict]:
    """x (thresholds), success and vanishing series per (variant, line, mode), and their styles
    (colour: the variant; line style: the method). A variant's trained-threshold point starts
    each of its lines."""
    xs = sorted({c.threshold for c in cells})
    variants = list(dict.fromkeys(c.variant for c in cells))
    lines: dict[tuple[str, str, str | None], dict[float, _Cell]] = {}
    for cell in cells:
        modes = sorted({c.mode for c in cells if (c.variant, c.line) == (cell.variant, cell.line) and c.mode})
        for mode in [cell.mode] if cell.mode else modes or [None]:
            lines.setdefault((cell.variant, cell.line, mode), {})[cell.threshold] = cell
    names = {key: ", ".join(part for part in key if part) for key in lines}
    success = {names[k]: [Rate.of(*p[x].success) if x in p else None for x in xs] for k, p in lines.items()}
    vanish = {names[k]: [Rate.of(*p[x].zero_grad) if x in p and p[x].zero_grad[1] else None for x in xs]
              for k, p in lines.items() if k[1] != "rsf"}  # RSF alone uses no gradient
    styles = {names[k]: (variants.index(k[0]), _LINE_STYLES.get(k[1], "-.")) for k in lines}
    return xs, success, vanish, styles


def threshold_study(runs: Runs, labels: Labels) -> Section:
    """Success and vanishing gradients vs the attack-time penultimate threshold, per model
    variant (seeds pooled), with Fisher's test against the trained threshold; then per run."""
    cells = _threshold_cells(runs, labels)
    pooled = Table(["variant", "attack", "seeds", "attack threshold", "success (pooled)", "vs trained threshold",
                    "stalled (of failed)", "all-zero gradient (of failed)", "RSF iterations"],
                   [[c.variant, c.label, str(len(c.runs)), f"{c.threshold:g}" + (" (trained)" if c.trained else ""),
                     rate(Rate.of(*c.success)), _versus_trained(c, cells), rate(Rate.of(*c.stalled)),
                     rate(Rate.of(*c.zero_grad)), str(c.rsf_iterations)] for c in cells],
                   "Per model variant, the rows of all its seeds pooled (Wilson 95% intervals, k/n). 'vs trained "
                   "threshold': the change in success against the same method at the trained threshold, with the "
                   "two-sided Fisher exact p-value.")
    rows = []
    for name, art, _, a in _rows(runs):
        trained, th = trained_threshold(art.card), a.parameters.get("attack_threshold")
        th = trained if th is None else float(th)
        rows.append([name, _variant(art.card), labels[a.id], f"{th:g}" + (" (trained)" if th == trained else ""),
                     _success(a), num_ci(a.offline.median_l0_ci, a.offline.median_l0), pct(zero_grad_share(art, a)),
                     *failure_cells(a.offline), str(a.offline.rsf_iterations)])
    per_run = Table(["run", "variant", "attack", "attack threshold", "success", "median L0",
                     "all-zero gradients (iterations)", "stalled (of failed)", "all-zero gradient (of failed)",
                     "RSF iterations"], rows, "Per run (one seed each). Penultimate-layer threshold during the gradient "
                                              "pass only; examples are judged on the unchanged model. Rates with "
                                              "Wilson 95% intervals and counts.")
    xs, success, vanish, styles = _threshold_series(cells)
    return Section("Study: penultimate threshold during the attack (the trap and its escape)", [
        "Raising the penultimate layer's threshold in the attack's gradient pass is the paper's escape from the "
        "gradient-vanishing trap. Whether the trap exists depends on what makes gradients vanish: the surrogate "
        "gradient's support (SLAYER's default is smooth and wide; a narrow rectangular window is zero outside it), "
        "depth and the loss. Where 'all-zero gradient' stays at 0%, there is no trap to escape. "
        "'scale-surrogate' raises the threshold and scales SLAYER's surrogate width with it; 'fixed-surrogate' "
        "changes the threshold alone (the paper's intervention)."], [pooled, per_run],
        [Figure("study-threshold-success", figures.lines(xs, success, "Attack success vs attack-time threshold",
                                                         "penultimate threshold in the gradient pass",
                                                         "attack success (%)", styles=styles),
                "Offline success per model variant (seeds pooled) and method as the penultimate threshold used for "
                "the gradient is raised (each line starts at its variant's trained threshold); Wilson 95% bands."),
         Figure("study-threshold-vanishing", figures.lines(xs, vanish, "Vanishing gradients vs attack-time threshold",
                                                           "penultimate threshold in the gradient pass",
                                                           "failed rows with an all-zero gradient (%)", styles=styles),
                "Share of the failed rows that met an exactly zero input gradient (seeds pooled, Wilson 95% bands): "
                "where this is high, G2S alone stalls and RSF does the work. The tables also give the stalled share "
                "of the failed rows.")])


def _variant(card: dict) -> str:
    spec = card["spec"]
    surrogate = spec["surrogate"]["kind"]
    if surrogate == "rectangular":
        surrogate += f" width {spec['surrogate']['width']:g}"
    depth = sum(layer["type"] != "flatten" for layer in spec["layers"])
    return f"{surrogate}, {depth} layers, {spec['training']['loss']}"


def device_study(runs: Runs, labels: Labels) -> Section:
    """Offline vs on-device success and transfer, per attack set and profile."""
    groups, offline, device, transfer, rows = [], [], {}, {}, []
    profiles = sorted({p for _, _, _, a in _rows(runs) for p in a.device})
    for name, _, _, a in _rows(runs):
        groups.append(f"{labels[a.id]} ({name})" if len(runs) > 1 else labels[a.id])
        offline.append(a.offline.success_rate_ci or a.offline.success_rate)
        for p in profiles:
            d = a.on(p)
            device.setdefault(p, []).append(d.success_rate_ci or d.success_rate)
            transfer.setdefault(p, []).append(d.transfer_rate_ci or d.transfer_rate)
        rows.append([name, labels[a.id], a.crafted_on or "this model", _success(a)]
                    + [f"{rate(a.on(p).success_rate_ci, a.on(p).success_rate)} / "
                       f"{rate(a.on(p).transfer_rate_ci, a.on(p).transfer_rate)}" for p in profiles])
    table = Table(["run", "attack", "crafted on", "offline success", *[f"{p}: success / transfer" for p in profiles]],
                  rows, "Success over rows classified correctly (offline: by SLAYER; device: by the device when "
                        "clean); transfer: share of offline successes that also fool the device. Wilson 95% intervals "
                        "and counts.")
    return Section("Study: offline vs on-device", [
        "A bit-exact profile reproduces attacks crafted on the deployed model (a consistency check). The float and "
        "noisy profiles and the sets crafted on an independently trained model show what an attacker without the "
        "deployed weights, or a non-ideal chip, changes."], [table],
        [Figure("study-device-success", figures.grouped_bars(groups, {"offline": offline, **device},
                                                             "Attack success offline and on each device",
                                                             "attack success (%)", xlabel="attack set"),
                "Success of each adversarial set offline (SLAYER) and replayed on each hardware profile, with Wilson "
                "95% error bars."),
         Figure("study-device-transfer", figures.grouped_bars(groups, transfer, "Transfer of offline successes to "
                                                              "the device", "transfer rate (%)", xlabel="attack set"),
                "Share of offline successes that also fool the device, per hardware profile, with Wilson 95% error "
                "bars.")])


def _comparisons(runs: Runs):
    """(run name, comparison) for every SNN vs ANN comparison in results.json's ``ann``."""
    for name, (_, results) in runs.items():
        for comparison in results.ann:
            yield name, comparison


def _eps_axis(comparison: AnnComparison) -> str:
    return ("eps (L-infinity, multiples of the mean input rate)" if comparison.settings.eps_scale == "mean-rate"
            else "eps (L-infinity, spike-rate units)")


def _ann_figure(name: str, comparison: AnnComparison, index: int) -> Figure:
    rows = comparison.ann_white_box
    eps = sorted({r.eps for r in rows})
    series: dict[str, list] = {}
    styles: dict[str, tuple[int, str]] = {}
    for colour, method in enumerate(dict.fromkeys(r.method for r in rows)):
        by_eps = {r.eps: r for r in rows if r.method == method}
        white, black = f"{method.upper()} on the ANN (white box)", f"{method.upper()} examples on the SNN (black box)"
        series[white] = [by_eps[e].ann_success_rate for e in eps]
        series[black] = [by_eps[e].to_snn.success_rate for e in eps]
        styles[white], styles[black] = (colour, "-"), (colour, "--")
    pgd = {r.eps: r for r in rows if r.method == "pgd"}
    if any(r.compared_at_equal_l0 for r in pgd.values()):
        series["SNN attack at PGD's L0 (white box)"] = [pgd[e].snn_success_at_equal_l0 for e in eps]
        styles["SNN attack at PGD's L0 (white box)"] = (len(styles) // 2, ":")
    png = figures.lines(eps, series, f"{name}: SNN vs ANN", _eps_axis(comparison), "attack success (%)", styles=styles)
    return Figure(f"study-ann-{index}", png, f"{name}: success of FGSM/BIM/PGD on the ANN twin (white box) and of the "
                  "same examples on the SNN after Bernoulli rate coding (black box), per L-infinity eps; and the SNN's "
                  "own attack at the number of events PGD changed (equal L0). Success over correctly classified "
                  "samples of the attacked model.")


def ann_study(runs: Runs, labels: Labels) -> Section:
    """SNN vs ANN: clean accuracy, white box on each, black-box transfer both ways, equal L0."""
    comparisons = list(_comparisons(runs))
    clean = Table(["run", "SNN", "SNN on rate-coded inputs", "ANN twin", "mean input rate"],
                  [[name, pct(c.clean.snn_accuracy), pct(c.clean.snn_accuracy_rate_coded),
                    pct(c.clean.ann_accuracy), f"{c.mean_rate:.3f}"] for name, c in comparisons],
                  "Clean test accuracy. ANN examples reach the SNN Bernoulli rate coded: compare their effect with the "
                  "SNN's accuracy on clean inputs coded the same way.")
    white = Table(["run", "method", "eps", "ANN success", "events changed (median)", "SNN success at equal L0",
                   "-> SNN accuracy", "-> SNN success"],
                  [[name, r.method.upper(), f"{r.eps:g}", pct(r.ann_success_rate),
                    num(r.median_equivalent_events), pct(r.snn_success_at_equal_l0),
                    pct(r.to_snn.accuracy), pct(r.to_snn.success_rate)]
                   for name, c in comparisons for r in c.ann_white_box],
                  "ANN attacks (white box) and their transfer to the SNN (black box, ANN -> SNN).")
    to_ann = Table(["run", "SNN attack", "SNN success", "median L0", "success on the ANN", "transfer rate"],
                   [[name, labels[s.attack_id], pct(s.snn_success_rate), num(s.median_l0),
                     pct(s.ann_success_rate), pct(s.transfer_rate)]
                    for name, c in comparisons if (s := c.snn_to_ann)],
                   "SNN adversarial spikes shown to the ANN as spike rates (black box, SNN -> ANN).")
    return Section("Study: SNN vs ANN", [
        "The ANN twin has the SNN's layers with ReLU and sees the spike rate over time. White-box success on each "
        "model is not comparable across threat models (L-infinity on rates vs flipped spikes); black-box transfer "
        "both ways and success at an equal number of changed events are the fairer comparisons. On N-MNIST the "
        "rates are tiny and rate coding destroys event timing, so eps is relative to the mean rate and the SNN's "
        "accuracy on rate-coded clean inputs is the reference (../shared/notes/attack-spec.md)."],
        [clean, white, to_ann], [_ann_figure(name, c, i) for i, (name, c) in enumerate(comparisons)])


#: The reference's table (../shared/notes/attack-spec.md, "Reference numbers": the authors' public
#: MNIST demo, CE-trained CNN, T = 15): (targeted, threshold raised in the gradient pass) ->
#: (successes, correct rows attacked, penultimate threshold in the gradient pass).
PAPER_REFERENCE = {(False, False): (46, 50, 0.3), (False, True): (50, 50, 1.0),
                   (True, False): (223, 441, 0.3), (True, True): (413, 450, 1.0)}


def rate_with_interval(k: int, n: int) -> str:
    """``k/n = rate [Wilson 95% interval]``, e.g. "46/50 = 92.0% [81.2%, 96.8%]" ("0/0" when n = 0)."""
    if n == 0:
        return "0/0"
    low, high = wilson(k, n)
    return f"{k}/{n} = {pct(k / n)} [{pct(low)}, {pct(high)}]"


def successes(attack: Attack) -> tuple[int, int]:
    """(successful rows, rows classified correctly before the attack) of an offline attack."""
    n = attack.n_correct_before
    return (0 if undefined(attack.offline.success_rate) else round(attack.offline.success_rate * n)), n


def paper_study(runs: Runs, labels: Labels) -> Section:
    """Our untargeted/targeted attacks at the trained and the raised attack-time threshold,
    each beside the reference's row of the same kind (:data:`PAPER_REFERENCE`), with k/n and
    Wilson 95% intervals; attacks of another kind (e.g. extra baselines) get no reference cell."""
    rows, groups, ours, reference = [], [], [], []
    for name, art, results, a in _rows(runs):
        trained = trained_threshold(art.card)
        th = a.parameters.get("attack_threshold")
        raised = th is not None and float(th) != trained
        ref = PAPER_REFERENCE.get((a.targeted, raised))
        k, n = successes(a)
        rows.append([name, labels[a.id], "targeted" if a.targeted else "untargeted",
                     f"{float(th) if raised else trained:g}" + ("" if raised else " (trained)"),
                     pct(results.clean.offline.accuracy), rate_with_interval(k, n), num(a.offline.median_l0),
                     pct(a.offline.median_flip_rate, small=True), pct(zero_grad_share(art, a)),
                     "n/a" if ref is None else f"{ref[2]:g}: {rate_with_interval(ref[0], ref[1])}"])
        groups.append(f"{labels[a.id]} ({name})" if len(runs) > 1 else labels[a.id])
        ours.append(a.offline.success_rate)
        reference.append(None if ref is None else ref[0] / ref[1])
    table = Table(["run", "attack", "kind", "threshold in gradient pass", "clean acc.", "success (k/n, 95% CI)",
                   "median L0", "median flip rate", "all-zero gradients", "reference: threshold, success"], rows,
                  "Offline success over rows classified correctly before the attack, with Wilson 95% intervals, "
                  "beside the reference's row of the same kind (the authors' MNIST demo: 50 test images, 9 targets "
                  "each; it reports image MSE, not L0).")
    png = figures.grouped_bars(groups, {"this harness": ours, "reference (MNIST demo)": reference},
                               "The paper's table side by side", "attack success (%)", xlabel="attack")
    return Section("Study: the paper's table side by side", [
        "The attack paper's reference model (rate-coded digits, T = 15, conv layers, LIF with decay 0.25, hard "
        "reset and threshold 0.3, rectangular surrogate of width 1, cross-entropy), attacked untargeted and "
        "targeted (every other class) with G2S+RSF at the trained penultimate threshold and at the raised one "
        "(gradient pass only; judged on the unchanged model). The reference attacks 28x28 MNIST images and "
        "re-samples their spikes; here the embedded 8x8 digits' spikes are flipped directly "
        "(../shared/notes/attack-spec.md), so sizes are in flips, not image MSE."], [table],
        [Figure("study-paper", png, "Attack success here and in the reference, per attack kind and threshold.")])


STUDIES: dict[str, Callable[[Runs, Labels], Section]] = {
    "methods": methods_study, "loss": loss_study, "threshold": threshold_study, "device": device_study,
    "ann": ann_study, "paper": paper_study}


def study_section(kind: str, runs: Mapping[str, "tuple[RunArtifacts, Results | Mapping]"], labels: Labels) -> Section:
    """The section of study ``kind`` (one of :data:`STUDIES`); results dicts are parsed first."""
    return STUDIES[kind](typed_runs(runs), labels)


def typed_runs(runs: Mapping[str, "tuple[RunArtifacts, Results | Mapping]"]) -> Runs:
    """``runs`` with every results.json dict parsed (and checked) as :class:`Results`."""
    return {name: (art, as_results(results, art.run.results)) for name, (art, results) in runs.items()}
