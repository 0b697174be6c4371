"""The report's hardware sections: where the network sits on the chip and what each input set costs.

Reads ``results.hardware`` (:mod:`harness.stages.hardware`): per profile a core map (the mesh, each
core coloured by its layer), the per-layer mapping table, absolute per-inference figures for the
clean test split and every attack (synaptic operations, energy, mesh traffic, busiest core, latency
proxy, each also as a ratio to clean), a per-core traffic heatmap (synaptic operations per core per
inference, clean vs each attack) and NeuroBench's metrics.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fmt import num, pct  # noqa: E402
from ..results_model import EnergyAttack, Hardware, Inference, MappingSummary, Results  # noqa: E402
from .figures import to_png  # noqa: E402
from .render import Figure, Labels, Section, Table, slug  # noqa: E402


def core_map(mapping: MappingSummary, title: str) -> bytes:
    """The used rows of one chip's mesh, each placed core coloured by its layer (row-major, layer order)."""
    rows, columns = mapping.mesh_shape
    layer_of = np.concatenate([np.full(layer.cores, i) for i, layer in enumerate(mapping.layers)])
    used_rows = min(rows, -(-mapping.cores // columns)) if mapping.chips == 1 else rows
    grid = np.full((used_rows, columns), np.nan)
    for core, layer in enumerate(layer_of[:used_rows * columns]):
        grid[core // columns, core % columns] = layer
    fig, ax = plt.subplots(figsize=(max(4.0, columns * 0.45), max(1.6, used_rows * 0.55 + 0.9)))
    colours = plt.get_cmap("tab10", max(1, len(mapping.layers)))
    ax.imshow(grid, cmap=colours, vmin=-0.5, vmax=len(mapping.layers) - 0.5, aspect="equal")
    for (r, c), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(c, r, str(r * columns + c), ha="center", va="center", fontsize=7, color="white")
    ax.set_xticks(range(columns))
    ax.set_yticks(range(used_rows))
    ax.set_xlabel("mesh column")
    ax.set_ylabel("mesh row")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(i)) for i in range(len(mapping.layers))]
    ax.legend(handles, [layer.name for layer in mapping.layers], loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    return to_png(fig)


def core_heatmap(sets: dict[str, Inference], title: str) -> bytes:
    """Synaptic operations per core per inference (rows: input sets, columns: cores), and as a ratio to clean."""
    names = list(sets)
    load = np.array([sets[n].per_core.synops for n in names], dtype=float)
    clean = load[0]
    ratio = np.divide(load, clean, out=np.full_like(load, np.nan), where=clean > 0)
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, load.shape[1] * 0.9 + 5), 0.5 * len(names) + 1.8),
                             constrained_layout=True)
    for ax, values, label in ((axes[0], load, "synaptic ops per inference"), (axes[1], ratio, "ratio to clean")):
        image = ax.imshow(values, aspect="auto", cmap="magma" if ax is axes[0] else "coolwarm",
                          **({} if ax is axes[0] else {"vmin": 0, "vmax": max(2.0, float(np.nanmax(ratio)))}))
        ax.set_xticks(range(load.shape[1]))
        ax.set_xlabel("core")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names if ax is axes[0] else [""] * len(names), fontsize=8)
        fig.colorbar(image, ax=ax, label=label)
    fig.suptitle(title, fontsize=10)
    return to_png(fig)


def energy_curves(attacks: dict[str, EnergyAttack], profile: str, title: str) -> bytes:
    """Activity ratio vs flip budget (offline, SLAYER, from one run's trajectory) per energy attack, with the
    device's measured ratio on ``profile`` at the attack's mean L0."""
    fig, ax = plt.subplots(figsize=(6.0, 3.4), constrained_layout=True)
    for i, (name, energy) in enumerate(attacks.items()):
        colour = plt.get_cmap("tab10")(i)
        points = sorted((int(b), v) for b, v in energy.activity_by_budget.items() if v is not None)
        if points:
            ax.plot(*zip(*points), "o-", color=colour, label=f"{name} (offline)")
        device = energy.device.get(profile)
        if device is not None and energy.mean_l0:
            ax.plot([energy.mean_l0], [device["device_activity_ratio"]], "s", color=colour, markersize=9,
                    markerfacecolor="none", label=f"{name} (device, at mean L0)")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("flip budget (L0)")
    ax.set_ylabel("activity ratio (adversarial / clean)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    return to_png(fig)


def _ratio(value: float, clean: float) -> str:
    return f"{value / clean:.2f}x" if clean else "n/a"


def _inference_rows(sets: dict[str, Inference]) -> list[list[str]]:
    clean = sets["clean"]
    rows = []
    for name, s in sets.items():
        rows.append([name, num(s.synops), _ratio(s.synops, clean.synops), f"{s.energy_j * 1e6:.3g}",
                     _ratio(s.energy_j, clean.energy_j), num(s.traffic_spike_hops), num(s.busiest_core_load),
                     num(s.latency_proxy), _ratio(s.latency_proxy, clean.latency_proxy)])
    return rows


def hardware_section(results: Results, profile: str, hardware: Hardware, labels: Labels, run: str) -> Section:
    """One profile's chip: mapping, per-inference figures clean vs attacks, per-core traffic, NeuroBench."""
    section = Section(f"Neurocores on {profile} ({run})", [], level=3)
    if hardware.mapping is None:
        section.paragraphs.append(f"The network does not fit the profile's chip: {hardware.mapping_error}")
        return section
    m = hardware.mapping
    section.paragraphs.append(
        f"The network occupies {m.cores} of {m.system_cores} neurocores ({pct(m.core_utilisation_pct / 100)}) on "
        f"{m.chips} chip(s), {m.links} core-to-core links, {m.mean_hops:.2f} mesh hops on average. Figures per "
        "inference are means over the replayed samples; Loihi advances every core in lock-step, so the busiest "
        "core of each step sets its duration (latency proxy: their sum).")
    section.tables.append(Table(["layer", "cores", "neurons", "synapses", "memory", "fan-in (max)", "fan-out (max)"],
                                [[l.name, str(l.cores), num(l.neurons), num(l.synapses), pct(l.memory_pct / 100),
                                  num(l.max_fan_in), num(l.max_fan_out)] for l in m.layers],
                                "Mapping: memory is the mean share of each core's synaptic memory."))
    sets = {"clean": hardware.clean, **{labels[i]: f for i, f in hardware.attacks.items()}}
    section.tables.append(Table(["input set", "synaptic ops", "x clean", "energy (uJ)", "x clean", "spike-hops",
                                 "busiest core", "latency proxy", "x clean"], _inference_rows(sets),
                                "Absolute per-inference figures (the profile's per-operation energies)."))
    section.figures.append(Figure(f"cores-{slug(run)}-{slug(profile)}", core_map(m, f"{run} on {profile}"),
                                  "Core map: each placed core coloured by its layer, numbered in placement order."))
    if len(sets) > 1:
        section.figures.append(Figure(f"core-traffic-{slug(run)}-{slug(profile)}",
                                      core_heatmap(sets, f"per-core load, {run} on {profile}"),
                                      "Per-core traffic: synaptic operations per core per inference, clean and "
                                      "under each attack, and their ratio to clean."))
    energy = {labels[a.id]: a.energy for a in results.attacks if a.energy is not None}
    if energy:
        section.figures.append(Figure(f"energy-{slug(run)}-{slug(profile)}", energy_curves(energy, profile,
                                      f"energy attack, {run}"), "Energy attack: the objective's activity ratio "
                                      "reached within each flip budget offline (one trajectory), and the device's "
                                      f"ratio on {profile} at the attack's mean L0."))
    if hardware.neurobench is not None:
        nb = hardware.neurobench
        section.tables.append(Table(["device activation sparsity", "effective ACs / sample", "dense ops / sample",
                                     "weights and biases (bytes)", "connection sparsity"],
                                    [[f"{nb.device_activation_sparsity:.3f}", num(nb.synaptic_operations.effective_acs),
                                      num(nb.synaptic_operations.dense), num(nb.weight_bias_bytes),
                                      f"{nb.connection_sparsity:.3f}"]],
                                    "NeuroBench's effective ACs, dense operations and connection sparsity on the "
                                    "clean test split (its definitions); activation sparsity counts the device's "
                                    "spikes (NeuroBench's also counts each layer's last-step spikes) and the bytes "
                                    "are weights and biases only (NeuroBench's footprint adds neuron parameters "
                                    "and state buffers)."))
    return section


def hardware_sections(results: Results, labels: Labels, run: str) -> list[Section]:
    """A section per profile with hardware figures (none when results.json has no ``hardware``)."""
    return [hardware_section(results, profile, hw, labels, run) for profile, hw in (results.hardware or {}).items()]
