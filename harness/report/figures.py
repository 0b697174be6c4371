"""Report figures (matplotlib, Agg backend), each returned as PNG bytes.

Every function takes plain arrays and dicts (no run-directory access), so figures can be made
for any data and tested on tiny inputs. Conventions: rates are fractions in [0, 1] plotted as
percent; L0 is in flipped spikes (input elements changed); time is in milliseconds
(step index x dt). Rendering is deterministic: the same inputs give the same bytes.

A plotted value may carry its interval: a number, None (not measured), a ``(value, low,
high)`` tuple or anything with an ``interval`` property giving one (a
:class:`harness.results_model.Rate`); bars and curves then get an error bar from low to high
(95% intervals throughout the report).
"""
from __future__ import annotations

import io
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..stats import mean_interval  # noqa: E402

ADDED = "#1a9641"    # spikes the attack added (0 -> 1)
REMOVED = "#d7191c"  # spikes the attack removed (1 -> 0)
CLEAN = "#404040"
DPI = 110
_PNG_METADATA = {"Software": None}  # no library version in the bytes: same figure, same file


def to_png(fig: plt.Figure) -> bytes:
    """Render and close ``fig``; PNG bytes."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata=_PNG_METADATA)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _percent_axis(ax: plt.Axes, label: str) -> None:
    ax.set_ylim(0, 105)
    ax.set_ylabel(label)
    ax.grid(axis="y", alpha=0.3)


def _as_percent(value: float | None) -> float:
    return np.nan if value is None else 100.0 * float(value)


def point(value) -> tuple[float, float, float]:
    """A plotted value as ``(value, low, high)`` in percent (NaN where undefined or without interval)."""
    if hasattr(value, "interval"):
        value = value.interval
    if isinstance(value, tuple):
        return tuple(_as_percent(v) for v in value)  # type: ignore[return-value]
    return _as_percent(value), np.nan, np.nan


def _error_bars(points: np.ndarray) -> list[list[float]] | None:
    """(2, N) distances below/above the values of (N, 3) ``points`` for matplotlib's ``yerr``, as
    lists (None: no interval at all)."""
    value, low, high = points.T
    if np.isnan(low).all():
        return None
    return np.nan_to_num(np.stack([value - low, high - value]), nan=0.0).clip(min=0).tolist()


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence], title: str,
                 ylabel: str, xlabel: str = "") -> bytes:
    """Bars of several series side by side for each group, in percent, values printed on the bars.

    Args:
        groups: the x categories (length G).
        series: legend label -> G fractions in [0, 1], each optionally with its interval (see
            :func:`point`; an error bar where given; None = not measured, shown as "n/a").
    """
    n = max(len(series), 1)
    width = min(0.8 / n, 0.3)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) * n ** 0.5 + 2), 3.6))
    x = np.arange(len(groups))
    for i, (label, values) in enumerate(series.items()):
        points = np.array([point(v) for v in values], dtype=float).reshape(-1, 3)
        heights = points[:, 0]
        errors = _error_bars(points)
        bars = ax.bar(x + (i - (n - 1) / 2) * width, np.nan_to_num(heights), width, label=label, yerr=errors,
                      capsize=2, error_kw={"elinewidth": 0.8, "ecolor": CLEAN})
        for bar, h in zip(bars, heights):
            ax.annotate("n/a" if np.isnan(h) else f"{h:.0f}%", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")
    long_names = max(map(len, groups), default=0) > 12
    ax.set_xticks(x, groups, rotation=20 if long_names else 0, ha="right" if long_names else "center")
    ax.set_xlim(-0.6, len(groups) - 0.4)
    _percent_axis(ax, ylabel)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return to_png(fig)


def _curve(ax: plt.Axes, x: Sequence[float], values: Sequence, style: str, colour: str, label: str,
           markersize: float = 6.0) -> None:
    """One line with a shaded band from each point's low to high bound (where it has an interval)."""
    points = np.array([point(v) for v in values], dtype=float).reshape(-1, 3)
    ax.plot(x, points[:, 0], style, color=colour, marker="o", markersize=markersize, label=label)
    if not np.isnan(points[:, 1]).all():
        ax.fill_between(x, points[:, 1], points[:, 2], color=colour, alpha=0.15, linewidth=0)


_SOURCE_STYLES = ("-", "--", ":", "-.")


def budget_curves(curves: Mapping[str, Mapping[str, Mapping]], title: str,
                  ylabel: str = "attack success (% of correct samples)",
                  xlabel: str = "budget: flipped input spikes per sample (log scale)") -> bytes:
    """A rate vs flip budget (log x axis; default attack success): one colour per attack (or run), one line
    style per judge.

    Args:
        curves: attack label -> {judge ("offline" first, then device profiles) -> {budget in
            flips (int, or its decimal string as in results.json): success rate (fraction,
            None = undefined, optionally with its interval: :func:`point`)}}. The first judge
            is drawn solid, the others dashed/dotted; intervals as shaded bands. The x axis may
            be another budget (``xlabel``): queries for query attacks.
    """
    fig, ax = plt.subplots(figsize=(7.0, 3.9))
    budgets: set[int] = set()
    for i, (attack, by_judge) in enumerate(curves.items()):
        for j, (judge, curve) in enumerate(by_judge.items()):
            points = sorted((int(b), r) for b, r in curve.items())
            budgets.update(b for b, _ in points)
            _curve(ax, [b for b, _ in points], [r for _, r in points], _SOURCE_STYLES[j % len(_SOURCE_STYLES)],
                   f"C{i % 10}", f"{attack}, {judge}", markersize=3.5)
    ax.set_xscale("log")
    ticks = _spaced(sorted(budgets))
    ax.set_xticks(ticks, [str(b) for b in ticks])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    _percent_axis(ax, ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return to_png(fig)


def _spaced(values: list[int], ratio: float = 1.5) -> list[int]:
    """The sorted ``values`` whose labels do not overlap on a log axis: each at least ``ratio`` x the last kept."""
    kept: list[int] = []
    for value in values:
        if not kept or value >= ratio * kept[-1]:
            kept.append(value)
    return kept


def l0_histograms(l0s: Mapping[str, np.ndarray], title: str, numel: int,
                  medians: Mapping[str, tuple] | None = None) -> bytes:
    """Distribution of L0 over successful samples, one step histogram per attack (log bins).

    Args:
        l0s: legend label -> (n,) flips of each successful sample.
        numel: input elements per sample (C*H*W*T), for the flip-rate axis on top.
        medians: label -> (median, low, high) flips: the median's interval, drawn as a dotted line
            and a band and given in the legend (default: the median of ``l0s`` alone).
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    finite = [np.asarray(v) for v in l0s.values() if len(v)]
    top = max((int(v.max()) for v in finite), default=1)
    bins = np.unique(np.geomspace(1, max(top, 2) * 1.05, 30).astype(int))
    for i, (label, values) in enumerate(l0s.items()):
        values = np.asarray(values)
        if not len(values):
            continue
        median, low, high = (medians or {}).get(label, (np.median(values), None, None))
        bounds = "" if low is None or high is None else f" [{low:.0f}, {high:.0f}]"
        ax.hist(np.maximum(values, 1), bins=bins, histtype="step", linewidth=1.6, color=f"C{i % 10}",
                label=f"{label} (median {median:.0f}{bounds})")
        if bounds:
            ax.axvline(max(median, 1), color=f"C{i % 10}", linestyle=":", linewidth=1)
            ax.axvspan(max(low, 1), max(high, 1), color=f"C{i % 10}", alpha=0.12, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel("L0: flipped spikes per successful sample (log scale)")
    ax.set_ylabel("successful samples")
    ax.set_title(title)
    second = ax.secondary_xaxis("top", functions=(lambda v: 100 * v / numel, lambda r: r * numel / 100))
    second.set_xlabel(f"flip rate (% of {numel} input elements)")
    if finite:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        ax.text(0.5, 0.5, "no successful samples", transform=ax.transAxes, ha="center")
    return to_png(fig)


def lines(x: Sequence[float], series: Mapping[str, Sequence], title: str, xlabel: str,
          ylabel: str, styles: Mapping[str, tuple[int, str]] | None = None) -> bytes:
    """One line per series over a shared x (a parameter sweep); fractions plotted as percent.

    Args:
        series: legend label -> one fraction per x (None = not measured: a gap), optionally
            with its interval (:func:`point`: a shaded band).
        styles: label -> (colour index, line style), to pair related series (default: a new
            colour per series, solid).
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, (label, values) in enumerate(series.items()):
        colour, style = (styles or {}).get(label, (i, "-"))
        _curve(ax, x, values, style, f"C{colour % 10}", label)
    ax.set_xlabel(xlabel)
    _percent_axis(ax, ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return to_png(fig)


def _mean_and_error(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of (N, ...) per-sample values: the mean and its Student-t 95% half-widths (2, ...)
    for ``yerr`` (0 where fewer than 2 samples)."""
    samples = np.asarray(samples, dtype=np.float64)
    flat = samples.reshape(len(samples), -1)
    stats = [mean_interval(flat[:, j]) for j in range(flat.shape[1])]
    mean = np.array([m for m, _, _ in stats]).reshape(samples.shape[1:])
    errors = np.nan_to_num(np.array([[m - lo, hi - m] for m, lo, hi in stats]).T, nan=0.0)
    return mean, errors.reshape((2, *samples.shape[1:]))


def activity_energy(layer_names: Sequence[str], activity: Mapping[str, np.ndarray],
                    energy: Mapping[str, np.ndarray], title: str) -> bytes:
    """Per-layer spikes and energy per sample (means with 95% t-interval error bars), clean vs adversarial.

    Args:
        layer_names: the L layers with neurons, first to last.
        activity: legend label (e.g. "clean", an attack id) -> (N, L) spikes of each sample
            per layer.
        energy: the same labels -> (N,) energy of each sample in joules; the first label's
            mean is the reference the bars' ratios are printed against.
    """
    fig, (ax_a, ax_e) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    n = max(len(activity), 1)
    width = 0.8 / n
    x = np.arange(len(layer_names))
    for i, (label, samples) in enumerate(activity.items()):
        mean, errors = _mean_and_error(samples)
        ax_a.bar(x + (i - (n - 1) / 2) * width, mean, width, label=label, yerr=errors.tolist(), capsize=2,
                 error_kw={"elinewidth": 0.8, "ecolor": CLEAN})
    ax_a.set_xticks(x, layer_names)
    ax_a.set_xlabel("layer")
    ax_a.set_ylabel("spikes per sample (mean)")
    ax_a.set_title("activity per layer")
    ax_a.grid(axis="y", alpha=0.3)
    labels = list(energy)
    means, errors = zip(*(_mean_and_error(np.asarray(energy[k]).reshape(-1, 1)) for k in labels))
    means = np.array([m[0] for m in means])
    bars = ax_e.bar(np.arange(len(labels)), 1e9 * means, color=[f"C{i}" for i in range(len(labels))],
                    yerr=(1e9 * np.concatenate(errors, axis=1)).tolist(), capsize=2, error_kw={"elinewidth": 0.8, "ecolor": CLEAN})
    for bar, mean in zip(bars, means):
        ax_e.annotate(f"{mean / means[0]:.2f}x" if means[0] else "",
                      (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7)
    ax_e.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right")
    ax_e.set_ylabel("energy per sample (nJ, estimate)")
    ax_e.set_title("energy (ratio to the first bar)")
    ax_e.grid(axis="y", alpha=0.3)
    ax_a.legend(fontsize=8)
    fig.suptitle(title)
    return to_png(fig)


def _raster(ax: plt.Axes, clean: np.ndarray, adv: np.ndarray, dt_ms: float) -> None:
    """Input raster (channels x time): clean spikes kept, added and removed ones marked."""
    kept = (clean == 1) & (adv == 1)
    added = (clean == 0) & (adv == 1)
    removed = (clean == 1) & (adv == 0)
    size = max(0.5, min(6.0, 2000.0 / max(clean.shape[0], 1)))
    for mask, color, marker, label in ((kept, CLEAN, "|", "kept spike"), (added, ADDED, "+", "added"),
                                       (removed, REMOVED, "x", "removed")):
        ch, t = np.nonzero(mask)
        ax.scatter(t * dt_ms, ch, s=size * (3 if mask is not kept else 1), c=color, marker=marker,
                   linewidths=0.8, label=f"{label} ({len(ch)})")
    ax.set_xlim(-dt_ms, clean.shape[1] * dt_ms)
    ax.set_ylim(clean.shape[0], -1)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("input channel")


def _frame(ax: plt.Axes, clean: np.ndarray, adv: np.ndarray) -> None:
    """Event frame (H x W): clean spike count per pixel, pixels with added/removed spikes marked.

    ``clean``/``adv`` are (C, H, W, T); polarities and time are summed.
    """
    counts = clean.sum(axis=(0, -1))
    ax.imshow(counts, cmap="Greys", interpolation="nearest")
    for sign, color, marker, label in ((1, ADDED, "+", "added"), (-1, REMOVED, "x", "removed")):
        changed = ((adv.astype(np.int16) - clean) == sign).sum(axis=(0, -1))
        y, x = np.nonzero(changed)
        ax.scatter(x, y, s=12 + 3 * changed[y, x], c=color, marker=marker, linewidths=1, label=label)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("pixel x")
    ax.set_ylabel("pixel y")


def _outputs(ax: plt.Axes, counts_clean: np.ndarray, counts_adv: np.ndarray, label: int, target: int) -> None:
    k = np.arange(len(counts_clean))
    ax.bar(k - 0.2, counts_clean, 0.4, color=CLEAN, label="clean")
    ax.bar(k + 0.2, counts_adv, 0.4, color="#fdae61", label="adversarial")
    ax.axvline(label, color=ADDED, linestyle=":", linewidth=1.2, label="true class")
    if target >= 0:
        ax.axvline(target, color=REMOVED, linestyle=":", linewidth=1.2, label="target class")
    ax.set_xticks(k)
    ax.set_xlabel("output class")
    ax.set_ylabel("output spikes")


def spike_examples(examples: Sequence[Mapping], dt_ms: float, title: str) -> bytes:
    """Clean vs adversarial inputs with the flips marked, one row per example.

    Each example maps: ``name`` (row title), ``clean``, ``adversarial`` (*shape, T) binary,
    ``label``, ``target`` (-1 untargeted), ``pred_clean``, ``pred_adv`` (-1 = no prediction) and
    optionally ``counts_clean``, ``counts_adv`` (K,) output spikes (an output panel when every
    example has them). Image-shaped inputs (C, H, W, T) also get an event frame.
    """
    framed = np.asarray(examples[0]["clean"]).ndim == 4
    outputs = all("counts_clean" in ex for ex in examples)
    ratios = [2.0] + [1.1] * framed + [1.4] * outputs
    fig, axes = plt.subplots(len(examples), len(ratios), figsize=(2.1 * sum(ratios) + 1, 3.2 * len(examples)),
                             squeeze=False, gridspec_kw={"width_ratios": ratios})
    for row, ex in zip(axes, examples):
        clean, adv = np.asarray(ex["clean"]), np.asarray(ex["adversarial"])
        t = clean.shape[-1]
        _raster(row[0], clean.reshape(-1, t), adv.reshape(-1, t), dt_ms)
        target = "" if int(ex["target"]) < 0 else f", target {int(ex['target'])}"
        row[0].set_title(f"{ex['name']}: class {ex['label']}{target}, predicted {_pred(ex['pred_clean'])} -> "
                         f"{_pred(ex['pred_adv'])}", fontsize=9)
        if framed:
            _frame(row[1], clean, adv)
            row[1].set_title("event frame (all steps)", fontsize=9)
        if outputs:
            _outputs(row[-1], np.asarray(ex["counts_clean"]), np.asarray(ex["counts_adv"]), int(ex["label"]),
                     int(ex["target"]))
            row[-1].legend(fontsize=7)
    axes[0][0].legend(fontsize=7, loc="upper right", markerscale=2)
    fig.suptitle(title)
    fig.tight_layout()
    return to_png(fig)


def _pred(pred: int) -> str:
    return "none (tie)" if int(pred) < 0 else str(int(pred))
