"""Energy attacks as their own metric (never "success"): device energy, synaptic operations and the
network's own spikes (hidden layers) per inference, each as a ratio to clean and to random flips
at the same L0, with Student-t 95% intervals over rows, and the predictions kept (Wilson)."""
from __future__ import annotations

import numpy as np

from ..results import RunArtifacts
from ..results_model import Rate, Results
from ..stats import mean_interval
from .render import Labels, Section, Table

#: The per-inference quantities of the table: (label, device array, columns kept: None = all, else a slice).
QUANTITIES = (("device energy (J)", "energy_j", None), ("synaptic operations", "synops", None),
              ("hidden-layer spikes (the network's own)", "layer_counts", slice(0, -1)))


def _per_row(arrays: dict, prefix: str, name: str, columns) -> np.ndarray:
    """(R,) float64 one quantity per replayed row (hidden layers summed for layer counts)."""
    values = np.asarray(arrays[f"{prefix}{name}"], dtype=np.float64)
    return values[:, columns].sum(axis=1) if columns is not None else values


def _ratio(adv: np.ndarray, base: np.ndarray) -> str:
    """Mean per-row adv/base with its t-interval, over rows whose base is positive."""
    keep = base > 0
    if not keep.any():
        return "—"
    mean, low, high = mean_interval(adv[keep] / base[keep])
    return f"{mean:.2f}x [{low:.2f}, {high:.2f}] ({int(keep.sum())} rows)"


def energy_section(art: RunArtifacts, results: Results, labels: Labels) -> Section | None:
    """The energy table on every profile (None when the run has no replayed energy attack)."""
    energy = [a for a in results.attacks if a.energy is not None and not a.parameters.get("reference")]
    rows = []
    for a in energy:
        baseline = next((b for b in results.attacks if b.parameters.get("reference") == a.id), None)
        for profile in art.profiles:
            replays = art.device.get(profile, {})
            if a.id not in replays:
                continue
            adv = replays[a.id].arrays
            attacked = np.asarray(art.attacks[a.id].correct_before, dtype=bool)
            random = replays[baseline.id].arrays if baseline is not None and baseline.id in replays else None
            for label, name, columns in QUANTITIES:
                ours, clean = _per_row(adv, "", name, columns)[attacked], _per_row(adv, "clean/", name, columns)[attacked]
                vs_random = "—"
                if random is not None:
                    position = {int(k): i for i, k in enumerate(random["sample_index"])}
                    pairs = [(i, position[int(k)]) for i, k in enumerate(adv["sample_index"]) if attacked[i]
                             and int(k) in position]
                    mine, theirs = _per_row(adv, "", name, columns), _per_row(random, "", name, columns)
                    vs_random = _ratio(np.array([mine[i] for i, _ in pairs]), np.array([theirs[j] for _, j in pairs]))
                rows.append([labels[a.id], profile, label, _ratio(ours, clean), vs_random])
            kept = (np.asarray(adv["predictions"]) == np.asarray(adv["clean/predictions"]))[attacked]
            rows.append([labels[a.id], profile, "predictions kept (adv. = clean, device)", _rate(kept), ""])
    if not rows:
        return None
    table = Table(["energy attack", "profile", "quantity per inference", "adv. / clean", "adv. / random flips (same L0)"],
                  rows, "Mean per-row ratios over the rows attacked, Student-t 95% intervals; predictions kept: "
                        "Wilson 95% interval and counts. Energy attacks have no success rate here.")
    return Section("Energy attacks: what the chip spends", [
        "An energy (sponge) attack tries to make the chip work harder, not to change the prediction; it is "
        "measured by what the device spends per inference, never by a success rate."], [table], level=3)


def _rate(flags: np.ndarray) -> str:
    r = Rate.of(int(flags.sum()), len(flags))
    return "—" if r.value is None else f"{r.value:.1%} [{r.low:.1%}, {r.high:.1%}] ({r.k}/{r.n})"
