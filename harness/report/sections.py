"""The report's content: which tables and figures describe a run, with their captions.

Inputs are a run's artifacts (:class:`harness.results.RunArtifacts`) and its summary
(results.json as typed :class:`harness.results_model.Results`); outputs are
:class:`~harness.report.render.Section` lists. Rates are
over rows classified correctly before the attack (offline) or by the device on the clean input
(device), exactly as in results.json (docs/results.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..aggregate import SeedFigure, across_seeds, is_headline, seed_groups
from ..fmt import mean_ci_pct, num, num_ci, pct, rate, times
from ..records import AttackRecord
from ..results import OFFLINE, RunArtifacts
from ..results_model import Attack, CleanDevice, OfflineStats, Rate, Results
from . import figures
from .energy_metric import energy_section
from .hardware import hardware_sections
from .render import Figure, Labels, Section, Table, slug

#: At most this many budget columns in a table (the figure shows them all).
MAX_BUDGET_COLUMNS = 4
#: At most this many attacks get a row in a run's example figure.
MAX_EXAMPLES = 5


# ---------------------------------------------------------------- clean accuracy
def clean_section(summaries: Mapping[str, Results]) -> Section:
    """Clean accuracy offline vs on each device, for one or several runs (run name -> results)."""
    profiles = sorted({p for r in summaries.values() for p in r.profiles})
    series = {"offline (SLAYER)": [r.clean.offline.accuracy_ci or r.clean.offline.accuracy
                                   for r in summaries.values()]}
    for profile in profiles:
        series[profile] = [_clean_device_accuracy(r, profile) for r in summaries.values()]
    rows = [[name, r.model.name, pct(r.model.train_accuracy), rate(r.clean.offline.accuracy_ci, r.clean.offline.accuracy)]
            + [_device_clean_cell(r.clean.device.get(p)) for p in profiles] for name, r in summaries.items()]
    table = Table(["run", "model", "train acc.", "test acc. offline"]
                  + [f"{p}: acc. / agreement / exact rasters" for p in profiles], rows,
                  "Clean test-set accuracy with Wilson 95% intervals and counts. Agreement: device prediction = "
                  "offline prediction; exact rasters: identical output spike trains.")
    png = figures.grouped_bars(list(summaries), series, "Clean test accuracy: offline model vs device",
                               "test accuracy (%)", xlabel="run")
    return Section("Clean accuracy: offline vs device", [
        "Each model is first measured without attack: offline in SLAYER and after replay on each hardware "
        "profile (Lava's Loihi 2 simulation). A bit-exact profile must agree with the offline model on "
        "every prediction."], [table],
        [Figure("clean-accuracy", png, "Clean test accuracy of each run, offline (SLAYER) and on each hardware "
                "profile, with Wilson 95% error bars. Higher is better; n/a = not replayed.")])


def _clean_device_accuracy(results: Results, profile: str) -> float | None:
    """Clean accuracy on ``profile`` (None: the run was not replayed there)."""
    replay = results.clean.device.get(profile)
    return None if replay is None else replay.accuracy_ci or replay.accuracy


def _device_clean_cell(d: CleanDevice | None) -> str:
    if d is None:
        return "not replayed"
    return (f"{rate(d.accuracy_ci, d.accuracy)} / {rate(d.agreement_ci, d.agreement)} / "
            f"{rate(d.raster_exact_ci, d.raster_exact)}")


# ---------------------------------------------------------------- across seeds
#: Display names of the headline figures (:data:`harness.aggregate.OFFLINE_METRICS`, ...).
FIGURE_NAMES = {"accuracy": "clean accuracy", "success_rate": "success", "median_l0": "median L0",
                "stalled_share": "stalled (of failed)", "zero_grad_share": "zero-gradient (of failed)",
                "transfer_rate": "transfer"}


@dataclass
class Interval:
    """A number with its bounds (for :func:`harness.fmt.num_ci`)."""

    value: float | None
    low: float | None
    high: float | None


def seed_cell(figure: SeedFigure) -> str:
    """A figure across seeds: "95.1% [93.0, 97.2] over 3 seeds; pooled 95.0% [92.1, 96.9], 270/284"."""
    if figure.pooled is None:
        mean = num_ci(Interval(*figure.interval), digits=0 if figure.metric.endswith("l0") else 2)
    else:
        mean = mean_ci_pct(*figure.interval)
    pooled = "" if figure.pooled is None else f"; pooled {rate(figure.pooled)}"
    return f"{mean} over {len(figure.values)} seeds{pooled}"


def seeds_section(summaries: Mapping[str, Results], labels: Labels) -> Section | None:
    """Runs that are seeds of one cell (:func:`harness.aggregate.seed_groups`): the headline figures
    as mean over seeds (Student-t 95%) and pooled (Wilson 95%), and offline success per attack with
    t-interval error bars. None when no run shares its cell with another seed."""
    groups = seed_groups(summaries)
    if not groups:
        return None
    tables, series = [], {}
    attacks = list(dict.fromkeys(labels[a.id] for names in groups for n in names for a in summaries[n].attacks))
    for names in groups:
        shown = [f for f in across_seeds([summaries[n] for n in names]) if is_headline(f.attack, f.profile, f.metric)]
        seeds = ", ".join(str(summaries[n].seed) for n in names)
        tables.append(Table(["attack", "profile", "figure", "across seeds"],
                            [[labels[f.attack] if f.attack else "(clean)", f.profile,
                              FIGURE_NAMES.get(f.metric, f.metric), seed_cell(f)] for f in shown],
                            f"{', '.join(names)} (seeds {seeds}): mean over seeds with its Student-t 95% interval; "
                            "pooled: the rows of all seeds together, with the Wilson 95% interval."))
        success = {labels[f.attack]: f.interval for f in shown if f.attack and f.profile == OFFLINE
                   and f.metric == "success_rate"}
        series[f"{names[0]} +{len(names) - 1} seeds"] = [success.get(a) for a in attacks]
    png = figures.grouped_bars(attacks, series, "Offline attack success, mean over seeds", "attack success (%)",
                               xlabel="attack")
    return Section("Across seeds", [
        "Runs with the same data, model, training and attacks that differ only in their seed are cells of one seed "
        "grid. The t-interval treats each seed as one observation and so includes the seed-to-seed spread "
        "(weights, coding); the pooled Wilson interval counts every row of every seed once."], tables,
        [Figure("seeds-success", png, "Offline success per attack, mean over the seeds of each cell, with Student-t "
                "95% error bars (none with fewer than 2 seeds where the figure is defined).")])


# ---------------------------------------------------------------- one run
def run_sections(art: RunArtifacts, results: Results, labels: Labels) -> list[Section]:
    """Every section about one run: attacks, L0, device, activity, examples, RSF usage."""
    model = results.model
    intro = Section(f"Run {art.name}", [
        f"Model `{model.name}` (T = {model.T} steps, seed {results.seed}), trained with the "
        f"{model.loss} loss and the {model.surrogate} surrogate gradient: "
        f"{pct(model.train_accuracy)} train / {rate(results.clean.offline.accuracy_ci, model.test_accuracy)} test "
        "accuracy."]
        + [headline(a, labels) for a in results.attacks])
    if not art.attacks:
        intro.paragraphs.append("No attack was run on this model.")
        return [intro, *hardware_sections(results, labels, art.name)]
    out = [intro, attacks_section(art, results, labels), l0_section(art, results, labels),
           rsf_section(art, results, labels)]
    queries = queries_section(art, labels)
    out += [queries] if queries else []
    if art.profiles:
        out.append(device_section(art, results, labels))
        energy = energy_section(art, results, labels)
        out += [energy] if energy else []
        out += [activity_section(art, profile, labels) for profile in art.profiles]
        out += hardware_sections(results, labels, art.name)
    examples = examples_section(art, results, labels)
    return out + ([examples] if examples else [])


def headline(attack: Attack, labels: Labels) -> str:
    """One sentence with an attack's main numbers (offline, then each device)."""
    if attack.energy is not None:
        return energy_headline(attack, labels)
    off = attack.offline
    text = (f"{labels[attack.id]}: fooled {rate(off.success_rate_ci, off.success_rate)} of the "
            f"{attack.n_correct_before} correctly classified rows, median L0 {num_ci(off.median_l0_ci, off.median_l0)} "
            f"flipped spikes ({pct(off.median_flip_rate)} of the input elements)")
    if off.n_failed:
        text += f"; of the {off.n_failed} failed rows, {_failure_text(off)}"
    devices = [f"{rate(d.transfer_rate_ci, d.transfer_rate)} of those successes transfer to {p}"
               for p, d in attack.device.items()]
    return text + ("; " + ", ".join(devices) if devices else "") + "."


def energy_headline(attack: Attack, labels: Labels) -> str:
    """An energy attack's sentence: the activity it reached and what the device's energy did (its "success"
    is reaching the target, not a misclassification)."""
    e = attack.energy
    text = (f"{labels[attack.id]} (energy): {e.objective} (its objective) x{e.mean_activity_ratio:.2f} of clean "
            f"offline (mean over {e.n_correct_before} rows, mean L0 {num(e.mean_l0)}), predictions kept on "
            f"{pct(e.prediction_kept)}")
    devices = [f"energy per inference x{d['change']['energy_j']:.2f} and latency proxy x{d['change']['latency_proxy']:.2f} "
               f"on {p}" for p, d in e.device.items()]
    return text + ("; " + "; ".join(devices) if devices else "") + "."


def _shown_budgets(budgets: list[int]) -> list[int]:
    if len(budgets) <= MAX_BUDGET_COLUMNS:
        return budgets
    return [budgets[i] for i in np.linspace(0, len(budgets) - 1, MAX_BUDGET_COLUMNS).round().astype(int)]


def attacks_section(art: RunArtifacts, results: Results, labels: Labels) -> Section:
    """Offline success table and success-vs-budget curves (offline solid, device dashed)."""
    shown = _shown_budgets([int(b) for b in results.budgets])
    reduced = any(a.parameters.get("reduce") for a in results.attacks)  # parameters: the method's own settings
    rows, curves = [], {}
    for a in _misclassification_attacks(results):
        off, name = a.offline, labels[a.id]
        rows.append([name, a.target_mode or "untargeted", str(a.n_attacked), str(a.n_correct_before),
                     rate(off.success_rate_ci, off.success_rate), num(off.mean_l0),
                     num_ci(off.median_l0_ci, off.median_l0)]
                    + ([num(off.median_l0_before_reduction)] if reduced else [])
                    + [num(off.mean_iterations, 1)] + [rate(off.success_ci_at(b), off.success_at(b)) for b in shown])
        curves[name] = {"offline": off.success_by_budget_ci or off.success_by_budget,
                        **{profile: d.success_by_budget_ci or d.success_by_budget for profile, d in a.device.items()}}
    table = Table(["attack", "targets", "rows", "correct before", "success", "mean L0", "median L0"]
                  + (["median L0 before reduction"] if reduced else []) + ["mean iterations"]
                  + [f"success at <= {b} flips" for b in shown], rows,
                  "Offline (SLAYER) attacks. Success over rows classified correctly before the attack, with Wilson "
                  "95% intervals and counts; L0 (flipped spikes) over successful rows, the median with its bootstrap "
                  "95% interval.")
    png = figures.budget_curves(curves, f"{art.name}: attack success vs perturbation budget")
    return Section("Attack success and budget", [], [table], [Figure(
        slug(f"{art.name}-success-vs-budget"), png,
        "Share of correctly classified rows fooled with at most the given number of flipped input spikes. "
        "Solid: offline (SLAYER); dashed: replayed on a device, over rows that device classified correctly "
        "when clean. Shaded: Wilson 95% intervals. Unless the attack enforced a budget (budget_curve in "
        "results.json), a point counts the final examples of one run: such an example exists within the budget, "
        "which is not the same as a run with that budget enforced.")], level=3)


def queries_section(art: RunArtifacts, labels: Labels) -> Section | None:
    """Score- and decision-based attacks: success against the oracle queries made (None without one)."""
    stats = {labels[i]: rec.query_stats() for i, rec in art.attacks.items() if rec.is_query}
    if not stats:
        return None
    rows, curves = [], {}
    for name, q in stats.items():
        low, high = q["median_queries_ci"]
        rows.append([name, f"{q['oracle']} ({q['profile'] or 'loihi2-fixed'})", f"{q['query_budget']:,}",
                     rate(Rate.of(q["n_success"], q["n_correct_before"])),
                     f"{num(q['median_queries'])} [{num(low)}, {num(high)}]"])
        curves[name] = {q["oracle"]: {b: Rate.of(k, n) for b, (k, n) in q["success_by_queries"].items()}}
    table = Table(["attack", "oracle (profile)", "query budget", "success", "median queries"], rows,
                  "Score- and decision-based attacks: success over rows classified correctly before, with Wilson 95% "
                  "intervals and counts; queries of the successful rows, the median with its bootstrap 95% interval.")
    png = figures.budget_curves(curves, f"{art.name}: query attacks, success vs queries",
                                xlabel="oracle queries per row (log scale)")
    return Section("Query attacks", [
        "These attacks see only the device's outputs: Sparse-RS its output spike counts, the pointwise attack "
        "its predicted label. A row's queries are all the queries it made (the pointwise attack keeps "
        "querying to shrink its example after the first success)."], [table],
        [Figure(slug(f"{art.name}-success-vs-queries"), png,
                "Share of correctly classified rows an attack fooled within at most the given number of oracle "
                "queries. Shaded: Wilson 95% intervals.")], level=3)


def l0_section(art: RunArtifacts, results: Results, labels: Labels) -> Section:
    """Distribution of L0 over successful rows, per attack, with the median's bootstrap interval."""
    l0s = {labels[i]: rec.l0[rec.success.astype(bool) & rec.correct_before.astype(bool)]
           for i, rec in art.attacks.items()}
    medians = {labels[a.id]: a.offline.median_l0_ci.interval for a in results.attacks
               if a.offline.median_l0_ci is not None and a.offline.median_l0_ci.n}
    numel = next(iter(art.attacks.values())).numel
    png = figures.l0_histograms(l0s, f"{art.name}: size of successful perturbations", numel, medians)
    return Section("Perturbation size (L0)", [
        "L0 counts flipped input elements: a spike added or removed at one time step. Smaller is stealthier. "
        "A random-flip baseline at the same L0 shows how much of an attack's effect is mere noise."], [],
        [Figure(slug(f"{art.name}-l0"), png, "Flips per successful row (log-spaced bins); the top axis gives the "
                f"flip rate as a share of the {numel} input elements of a sample. Dotted: the median, shaded: its "
                "bootstrap 95% interval.")], level=3)


@dataclass
class GradientUse:
    """How an attack's iterations went, over rows classified correctly before the attack.

    Attributes:
        iterations: total attack iterations.
        zero_grad: iterations whose input gradient was all zero (None: the method uses none).
        rsf: iterations in which RSF replaced G2S (or all, for RSF alone).
        rows_with_rsf: share of rows that used RSF at least once (None: no rows).
        rows_with_rsf_rate: the same share with its counts and Wilson interval.
    """

    iterations: int
    zero_grad: int | None
    rsf: int
    rows_with_rsf: float | None
    rows_with_rsf_rate: Rate

    @classmethod
    def of(cls, rec: AttackRecord) -> "GradientUse":
        ok = rec.correct_before.astype(bool)
        zero = rec.zero_grad_iterations[ok]
        return cls(iterations=int(rec.iterations[ok].sum()),
                   zero_grad=int(zero.sum()) if len(zero) and zero.min() >= 0 else None,
                   rsf=int(rec.rsf_iterations[ok].sum()),
                   rows_with_rsf=float((rec.rsf_iterations[ok] > 0).mean()) if ok.any() else None,
                   rows_with_rsf_rate=Rate.of(int((rec.rsf_iterations[ok] > 0).sum()), int(ok.sum())))

    @property
    def zero_grad_share(self) -> float | None:
        """Share of iterations with an all-zero input gradient."""
        return None if self.zero_grad is None or not self.iterations else self.zero_grad / self.iterations

    @property
    def rsf_share(self) -> float | None:
        """Share of iterations done by RSF."""
        return self.rsf / self.iterations if self.iterations else None


def _failure_text(off: OfflineStats) -> str:
    """Stalled and zero-gradient shares of an attack's failed rows, as words with intervals."""
    stalled = ("stalls not tracked" if off.stall_window is None and off.stalled_share_ci is None
               else f"{rate(off.stalled_share_ci, off.stalled_share)} stalled")
    zero = ("no gradient used" if off.zero_grad_share_ci is None and off.zero_grad_share is None
            else f"{rate(off.zero_grad_share_ci, off.zero_grad_share)} met an all-zero gradient")
    return f"{stalled}, {zero}"


def rsf_section(art: RunArtifacts, results: Results, labels: Labels) -> Section:
    """How often the gradient vanished, rows stalled and RSF stepped in, per attack (rows correct before)."""
    use = {attack_id: GradientUse.of(rec) for attack_id, rec in art.attacks.items()}
    offline = {a.id: a.offline for a in results.attacks}
    series = {"rows that used RSF at least once": [use[i].rows_with_rsf_rate for i in use],
              "failed rows with an all-zero gradient": [_share(offline[i], "zero_grad_share") for i in use],
              "failed rows that stalled": [_share(offline[i], "stalled_share") for i in use]}
    rows = [[labels[i], art.attacks[i].attrs["method"], num(u.iterations),
             "n/a (no gradient)" if u.zero_grad is None else f"{num(u.zero_grad)} ({pct(u.zero_grad_share)})",
             num(u.rsf), rate(u.rows_with_rsf_rate), num(offline[i].n_failed), *failure_cells(offline[i])]
            for i, u in use.items()]
    png = figures.grouped_bars([labels[i] for i in use], series, f"{art.name}: vanishing gradients, stalls and RSF use",
                               "share of rows (%)", xlabel="attack")
    table = Table(["attack", "method", "iterations", "all-zero gradients (iterations)", "RSF iterations",
                   "rows using RSF", "failed rows", "stalled (of failed)", "all-zero gradient (of failed)"], rows,
                  "Totals over rows classified correctly before the attack; shares with Wilson 95% intervals and "
                  "counts. A failed row stalled when neither its prediction nor its count margin changed over the "
                  "attack's last stall_window iterations; n/a: not tracked (baselines) or no failed row.")
    return Section("Vanishing gradients, stalls and RSF", [
        "RSF (restricted spike flipper) replaces G2S in an iteration where a row's input gradient is exactly zero "
        "(the gradient-vanishing 'trap'). G2S alone makes no progress there; RSF alone uses no gradient at all. A "
        "row can also stall without a zero gradient (an objective that no longer moves the prediction): the "
        "stalled share of the failed rows shows it where the zero-gradient share cannot."],
        [table], [Figure(slug(f"{art.name}-rsf"), png, "Share of correct rows that needed RSF at least once, and "
                         "shares of the failed rows that met an all-zero input gradient and that stalled; Wilson 95% "
                         "error bars.")],
        level=3)


def failure_cells(off: OfflineStats) -> list[str]:
    """Table cells: the stalled and the all-zero-gradient shares of an attack's failed rows."""
    return [rate(off.stalled_share_ci, off.stalled_share), rate(off.zero_grad_share_ci, off.zero_grad_share)]


def _share(off: OfflineStats, name: str):
    """A failed-row share with its interval where the file has one (for a figure)."""
    return getattr(off, f"{name}_ci") or getattr(off, name)


def _misclassification_attacks(results: Results) -> list[Attack]:
    """The attacks whose success means a changed prediction (energy attacks have their own table)."""
    return [a for a in results.attacks if a.energy is None]


def device_section(art: RunArtifacts, results: Results, labels: Labels) -> Section:
    """On-device success, transfer rate, activity and energy change per attack and profile."""
    attacks = _misclassification_attacks(results)
    rows = [[labels[a.id], profile, rate(d.accuracy_ci, d.accuracy), rate(a.offline.success_rate_ci, a.offline.success_rate),
             rate(d.success_rate_ci, d.success_rate), rate(d.transfer_rate_ci, d.transfer_rate),
             times(d.activity_change), times(d.energy_change)]
            for a in attacks for profile, d in a.device.items()]
    series = {p: [a.on(p).transfer_rate_ci or a.on(p).transfer_rate for a in attacks] for p in art.profiles}
    png = figures.grouped_bars([labels[a.id] for a in attacks], series,
                               f"{art.name}: do offline adversarial examples fool the device?",
                               "transfer rate (%)", xlabel="attack")
    table = Table(["attack", "profile", "device acc. (adv.)", "success offline", "success on device", "transfer rate",
                   "spikes of every layer adv./clean", "device energy adv./clean"], rows,
                  "Device success over rows the device classified correctly when clean; transfer rate: share of the "
                  "offline successes among those rows that also fool the device. Wilson 95% intervals and counts.")
    return Section("On the device", [
        "When an attack was crafted on the same quantized model, a bit-exact profile must reproduce every offline "
        "success (a consistency check). The findings are the float and noisy profiles and sets crafted on another "
        "model."], [table], [Figure(slug(f"{art.name}-transfer"), png, "Transfer rate per attack and hardware "
                                    "profile: the share of offline successes that also fool the device, with Wilson 95% error bars.")],
        level=3)


def activity_section(art: RunArtifacts, profile: str, labels: Labels) -> Section:
    """Per-layer spikes and energy per sample on ``profile``: clean test set vs each attack."""
    replays = art.device[profile]
    clean = replays["clean"].arrays
    activity = {"clean": clean["layer_counts"]}
    energy = {"clean": clean["energy_j"]}
    for attack_id in art.attacks:
        if attack_id in replays:
            activity[labels[attack_id]] = replays[attack_id].arrays["layer_counts"]
            energy[labels[attack_id]] = replays[attack_id].arrays["energy_j"]
    png = figures.activity_energy(replays["clean"].attrs["layer_names"], activity, energy,
                                  f"{art.name} on {profile}: activity and energy, clean vs adversarial")
    return Section(f"Activity and energy on {profile}", [], [], [Figure(
        slug(f"{art.name}-{profile}-activity"), png,
        f"Left: mean spikes per sample emitted by each layer on {profile}; right: mean energy per sample "
        "(estimate from the profile's per-operation figures), with Student-t 95% error bars of the means. Clean: "
        "the whole test set; adversarial: the attacked rows.")], level=3)


def _typical_row(success: np.ndarray, l0: np.ndarray) -> int | None:
    """The successful row with the median L0 (a typical, not a best-case, example)."""
    rows = np.flatnonzero(success)
    if not len(rows):
        return None
    return int(rows[np.argsort(l0[rows], kind="stable")[len(rows) // 2]])


def examples_section(art: RunArtifacts, results: Results, labels: Labels) -> Section | None:
    """One typical successful example per attack: input flips and output spikes."""
    profile = art.profiles[0] if art.profiles else None
    examples = []
    for attack_id, rec in art.attacks.items():
        row = _typical_row(rec.success.astype(bool) & rec.correct_before.astype(bool), rec.l0)
        if row is None or len(examples) == MAX_EXAMPLES:
            continue
        example = {"name": labels[attack_id], "clean": rec.clean[row], "adversarial": rec.adversarial[row],
                   "label": int(rec.labels[row]), "target": int(rec.targets[row]),
                   "pred_clean": int(rec.pred_clean[row]), "pred_adv": int(rec.pred_adv[row])}
        if profile is not None and attack_id in art.device[profile]:
            replay = art.device[profile][attack_id].arrays
            example["counts_clean"], example["counts_adv"] = replay["clean/output_counts"][row], replay["output_counts"][row]
        examples.append(example)
    if not examples:
        return None
    png = figures.spike_examples(examples, float(results.dataset.dt_ms), f"{art.name}: clean vs adversarial inputs")
    outputs = f" Right: output spikes per class on {profile}, clean vs adversarial." if profile else ""
    return Section("Examples", [], [], [Figure(
        slug(f"{art.name}-examples"), png,
        "One typical successful example per attack (the row with the median L0). Left: input spikes over time "
        "(grey), spikes the attack added (green +) and removed (red x); middle, for image-shaped inputs: the event "
        "frame (spikes per pixel over all steps) with the pixels that gained or lost spikes." + outputs)], level=3)
