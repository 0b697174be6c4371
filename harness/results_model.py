"""The one definition of ``RUN_DIR/results.json``: typed records, its JSON Schema, parsing.

The dataclasses below are the only description of results.json. From them come

- :func:`results_schema`: the JSON Schema committed as ``harness/schemas/results.schema.json``
  (regenerate with ``python -m harness.results_model > harness/schemas/results.schema.json``;
  tests/test_results_model.py fails when the committed file and this module disagree);
- :meth:`Results.from_dict` / :meth:`Results.load`: a results dict (or file) checked against that
  schema, then turned into typed objects (what the report reads);
- :meth:`Record.to_dict`: the JSON-ready dict again, keys in the order of the fields.

How a field maps to the schema:

- a field without a default is required; with a default it may be missing;
- ``Optional[X] = None``: the value may be null (and is always written);
- ``Optional[X] = absent()``: the key may be missing (None in Python, left out when written);
  the value itself may not be null unless ``absent(nullable=True)`` (then a null read from a
  file is written back as null, and :meth:`Record.has` tells it from a missing key);
- ``Annotated[X, Kw(...)]`` adds JSON Schema keywords (ranges, descriptions, ...); a
  :class:`Def` in the metadata moves the schema built so far into ``$defs`` under its name
  and leaves a ``$ref`` (keywords after the ``Def`` annotate the reference, e.g. a description);
- a record whose ``CLOSED`` is true allows no other keys; the others keep unknown keys in
  ``extra`` (written back after the known ones), as the schema lets them through.

Units and counting rules are those of docs/results.md: rates are fractions in [0, 1] over the
rows classified correctly before the attack, L0 is in flipped input elements, and an undefined
value is None (JSON null).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import sys
import types
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Mapping, Optional, Union, get_args, get_origin, get_type_hints

import jsonschema

from .errors import DataError

SCHEMA_VERSION = 1
#: The committed schema, inside the package.
SCHEMA_RESOURCE = "schemas/results.schema.json"
#: ``settings.eps_scale`` of an SNN vs ANN comparison (harness.attacks.ann.EPS_SCALES; a test
#: checks they agree: this module imports nothing heavy).
EPS_SCALES = ("absolute", "mean-rate")


class Kw:
    """JSON Schema keywords attached to a type through ``Annotated`` (e.g. ``Kw(minimum=0)``)."""

    def __init__(self, **keywords: Any):
        self.keywords = keywords

    def __repr__(self) -> str:
        return f"Kw({self.keywords!r})"


class Def:
    """Put the schema built so far into ``$defs[name]`` and refer to it from here."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"Def({self.name!r})"


def absent(nullable: bool = False) -> Any:
    """A field whose key may be missing from results.json: None in Python, left out when written."""
    return field(default=None, metadata={"omit_none": True, "nullable": nullable})


def _text(description: str) -> Kw:
    return Kw(description=description)


# ---------------------------------------------------------------- shared value types
#: A rate in [0, 1]; None where its set is empty.
Fraction = Annotated[Optional[float], Kw(minimum=0, maximum=1), Def("fraction")]
#: An adversarial / clean ratio (>= 0); None where the clean value is 0.
Ratio = Annotated[Optional[float], Kw(minimum=0, description="adversarial / clean"), Def("ratio")]
#: Budget in flips (decimal string) -> success rate at that budget.
ByBudget = Annotated[dict[str, Fraction],
                     Kw(description="budget in flips (decimal string) -> success rate at that budget", minProperties=1,
                        propertyNames={"pattern": "^[1-9][0-9]*$"}), Def("by_budget")]
Count = Annotated[int, Kw(minimum=0)]
Flips = Annotated[Optional[float], Kw(minimum=0, description="flips, over successful rows")]


@dataclass(kw_only=True)
class Record:
    """Base of every results.json object: building from a mapping and back to a dict."""

    CLOSED: ClassVar[bool] = False
    #: keys this definition does not know (only where the schema lets them through).
    extra: dict[str, Any] = field(default_factory=dict, repr=False, metadata={"internal": True})
    #: ``absent(nullable=True)`` fields that were read as an explicit null (written back as null).
    nulls: frozenset[str] = field(default=frozenset(), repr=False, metadata={"internal": True})

    @classmethod
    def build(cls, data: Mapping[str, Any], where: str = "results") -> "Record":
        """An instance from a JSON-like mapping (not schema-validated: see :meth:`Results.from_dict`).

        Raises:
            DataError: naming ``where`` and the key path, when a required key is missing or an
                object is not a mapping.
        """
        if not isinstance(data, Mapping):
            raise DataError(f"{where}: expected an object, got {type(data).__name__}")
        hints = _hints(cls)
        values, known = {}, set()
        for f in _fields(cls):
            known.add(f.name)
            if f.name in data:
                values[f.name] = _build(hints[f.name], data[f.name], f"{where}/{f.name}")
            elif _required(f):
                raise DataError(f"{where}: missing required key '{f.name}'")
        extra = {k: v for k, v in data.items() if k not in known}
        if extra and cls.CLOSED:
            raise DataError(f"{where}: unexpected keys {sorted(extra)}")
        nulls = frozenset(f.name for f in _fields(cls) if f.metadata.get("nullable") and f.name in data
                          and data[f.name] is None)
        return cls(**values, extra=extra, nulls=nulls)

    def has(self, name: str) -> bool:
        """Whether field ``name`` is written: a value, or null where null is its value (not absence)."""
        value = getattr(self, name)
        return value is not None or not _field(type(self), name).metadata.get("omit_none") or name in self.nulls

    def to_dict(self) -> dict[str, Any]:
        """The JSON-like dict: fields in their order (absent ones left out), then ``extra``."""
        out = {f.name: _plain(getattr(self, f.name)) for f in _fields(type(self)) if self.has(f.name)}
        out.update(self.extra)
        return out


def _fields(cls) -> list[dataclasses.Field]:
    """The fields that are keys of results.json (not ``extra`` and ``nulls``)."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def _field(cls, name: str) -> dataclasses.Field:
    return next(f for f in _fields(cls) if f.name == name)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict[str, Any]:
    return get_type_hints(cls, include_extras=True)


def _is_union(tp) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _without_annotations(tp):
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _build(tp, value, where: str):
    """``value`` (JSON-like) as the Python value of type ``tp`` (records built recursively)."""
    tp = _without_annotations(tp)
    if value is None:
        return None
    if _is_union(tp):
        (tp,) = [a for a in get_args(tp) if a is not type(None)]
        return _build(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.build(value, where)
    origin = get_origin(tp)
    if origin is list and not isinstance(value, list):
        raise DataError(f"{where}: expected a list, got {type(value).__name__}")
    if origin is list:
        (item,) = get_args(tp)
        return [_build(item, v, f"{where}/{i}") for i, v in enumerate(value)]
    if origin is dict and not isinstance(value, Mapping):
        raise DataError(f"{where}: expected an object, got {type(value).__name__}")
    if origin is dict:
        _, item = get_args(tp)
        return {k: _build(item, v, f"{where}/{k}") for k, v in value.items()}
    return value


def _plain(value):
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- intervals
#: Confidence of every interval in results.json (two-sided).
CONFIDENCE = 0.95


@dataclass(kw_only=True)
class Rate(Record):
    """A rate with its counts and Wilson 95% interval: ``value`` = k / n, in [low, high].

    With n = 0 the rate is undefined: ``value``, ``low`` and ``high`` are null.
    """

    CLOSED = True
    value: Fraction
    k: Count
    n: Count
    low: Fraction
    high: Fraction

    @classmethod
    def of(cls, k: int, n: int) -> "Rate":
        """k successes of n trials (ints), with the Wilson interval of :func:`harness.stats.wilson`."""
        from .stats import wilson

        k, n = int(k), int(n)
        if not n:
            return cls(value=None, k=k, n=0, low=None, high=None)
        low, high = wilson(k, n, CONFIDENCE)
        return cls(value=k / n, k=k, n=n, low=low, high=high)

    @property
    def interval(self) -> tuple[float | None, float | None, float | None]:
        """``(value, low, high)`` (what the figures draw as a point with an error bar)."""
        return self.value, self.low, self.high

    @classmethod
    def build(cls, data: Mapping[str, Any], where: str = "results") -> "Rate":
        """A rate read from a file, checked against what :meth:`of` writes (the schema cannot say
        k <= n or value = k / n).

        Raises:
            DataError: naming ``where`` (file and key path) and the broken invariant.
        """
        rate = super().build(data, where)
        problem = rate._inconsistency()
        if problem:
            raise DataError(f"{where}: {problem}; the file was edited or damaged: rewrite it with harness report")
        return rate

    def _inconsistency(self) -> str | None:
        """What makes this rate differ from ``Rate.of(k, n)``, or None (tolerance 1e-9)."""
        k, n = self.k, self.n
        if not (isinstance(k, int) and isinstance(n, int) and 0 <= k <= n):
            return f"k = {k!r} successes of n = {n!r} trials (needs 0 <= k <= n)"
        expected = Rate.of(k, n)
        for name in ("value", "low", "high"):
            got, want = getattr(self, name), getattr(expected, name)
            if (got is None) != (want is None) or (want is not None and not abs(got - want) <= 1e-9):
                return (f"{name} = {got!r} does not follow from k = {k}, n = {n} "
                        f"(expected {want!r}: value = k / n, Wilson 95% interval)")
        return None


@dataclass(kw_only=True)
class MedianCI(Record):
    """A median with its percentile-bootstrap 95% interval (:func:`harness.stats.bootstrap_median`).

    ``n`` values were resampled ``resamples`` times from a generator seeded by ``seed``; with
    n = 0 ``value``, ``low`` and ``high`` are null.
    """

    CLOSED = True
    value: Flips
    n: Count
    low: Flips
    high: Flips
    resamples: Annotated[int, Kw(minimum=1)]
    seed: int

    @property
    def interval(self) -> tuple[float | None, float | None, float | None]:
        """``(value, low, high)``."""
        return self.value, self.low, self.high

    @classmethod
    def build(cls, data: Mapping[str, Any], where: str = "results") -> "MedianCI":
        """A median read from a file: null exactly when n = 0, else low <= value <= high.

        Raises:
            DataError: naming ``where`` and the broken invariant.
        """
        median = super().build(data, where)
        values = (median.value, median.low, median.high)
        empty = median.n == 0
        if any((v is None) != empty for v in values) or (not empty and not values[1] <= values[0] <= values[2]):
            raise DataError(f"{where}: median {median.value!r} with interval [{median.low!r}, {median.high!r}] of "
                            f"n = {median.n!r} values (needs low <= value <= high, all null exactly when n = 0); "
                            "the file was edited or damaged: rewrite it with harness report")
        return median


#: A :class:`Rate` as a schema definition (``$defs/rate``).
RateCI = Annotated[Rate, Def("rate")]
#: Key (budget in flips, true class or target class, as a decimal string) -> :class:`Rate`.
RatesBy = Annotated[dict[str, RateCI], Kw(propertyNames={"pattern": "^(0|[1-9][0-9]*)$"})]


@dataclass(kw_only=True)
class BudgetCurve(Record):
    """What ``success_by_budget`` is (:meth:`harness.records.AttackRecord.stats`)."""

    kind: Annotated[str, _text("final-l0: from the final examples of one run (such an example exists at that "
                               "budget; not the same as a run with that budget enforced)")]
    enforced_budget: Annotated[Optional[int], _text("flips the attack itself enforced, or null")] = None
    budget_mode: Optional[str] = None


@dataclass(kw_only=True)
class RobustVerdict(Record):
    """One judge's robust accuracy (the offline model, or a device profile): docs/evaluation.md."""

    CLOSED = True
    robust_accuracy: Annotated[dict[str, Fraction], Kw(
        description="budget in flips (decimal string; 0 = clean accuracy) -> robust accuracy over all N rows",
        propertyNames={"pattern": "^(0|[1-9][0-9]*)$"})]
    robust_accuracy_ci: Annotated[RatesBy, _text("the same with k/n and the Wilson 95% interval")]
    broken_first_by: Annotated[dict[str, Count], _text(
        "attack label -> rows it broke first (cascade order) within the largest budget")]


@dataclass(kw_only=True)
class RetimingCurve(Record):
    """The retiming curve of an evaluation (docs/evaluation.md, "The retiming curve"): robust accuracy
    per timing budget D, kept apart from the flip curve."""

    CLOSED = True
    budgets: Annotated[list[Annotated[int, Kw(minimum=1)]], Kw(
        minItems=1, description="timing budgets D (steps each spike may move)")]
    verdicts: Annotated[dict[str, RatesBy], _text(
        "judge (offline or a profile name) -> D (decimal string) -> robust accuracy with k/n and the Wilson "
        "95% interval")]


@dataclass(kw_only=True)
class EvaluationFlag(Record):
    """A trust check that fired (docs/evaluation.md, "Flags")."""

    CLOSED = True
    level: Annotated[str, Kw(enum=["warning", "error"])]
    code: Annotated[str, _text("weak-gradient, offline-device-disagree or zero-gradients")]
    verdict: Annotated[str, _text("offline or the profile it concerns")]
    message: str


@dataclass(kw_only=True)
class Robustness(Record):
    """The headline evaluation (RUN_DIR/evaluations/<id>.h5): robust accuracy offline (``offline``) and per
    device profile (one more key per profile name, each a robust_verdict)."""

    evaluation: Annotated[str, _text("the evaluation id (RUN_DIR/evaluations/<id>.h5)")]
    n: Annotated[Count, _text("test rows evaluated (the first N of the split)")]
    budgets: Annotated[list[Annotated[int, Kw(minimum=1)]], Kw(minItems=1, description="flip budgets (L0)")]
    ensemble: Annotated[list[str], _text("the attacks' labels, in cascade order")]
    flags: list[EvaluationFlag]
    offline: Annotated[RobustVerdict, Def("robust_verdict")]
    retiming: Optional[RetimingCurve] = absent()

    def verdicts(self) -> dict[str, RobustVerdict]:
        """``offline`` and each profile's verdict, in the file's order."""
        profiles = {k: RobustVerdict.build(v, f"robustness/{k}") for k, v in self.extra.items()}
        return {"offline": self.offline, **profiles}


# ---------------------------------------------------------------- results.json
@dataclass(kw_only=True)
class Dataset(Record):
    """The model card's data description (docs/results.md, ``dataset``)."""

    dataset: str
    encoding: str
    dt_ms: Annotated[float, Kw(exclusiveMinimum=0)]
    sensor_size: Optional[list[int]] = absent()
    seed: Optional[int] = None
    shape: Annotated[list[Annotated[int, Kw(minimum=1)]], _text("one sample: (C, T) or (C, H, W, T)")]
    path: Optional[str] = None
    n_train: Count
    n_test: Count


@dataclass(kw_only=True)
class Model(Record):
    """The model: steps, offline accuracies (tie = wrong), training loss and surrogate; an imported one
    (``imported`` true) has no training accuracy (null) and 0 epochs."""

    name: str
    T: Annotated[int, Kw(minimum=1, description="time steps per sample")]
    train_accuracy: Fraction
    test_accuracy: Fraction
    loss: Optional[str] = absent()
    surrogate: Optional[str] = absent()
    epochs: Optional[Count] = absent()
    imported: Optional[bool] = absent()
    spec_digest: Annotated[Optional[str], _text(
        "sha256 of the model spec (data coding, neuron, surrogate, layers, training settings; not the seed): "
        "runs with equal digests are one model up to its seed")] = absent()


@dataclass(kw_only=True)
class CleanOffline(Record):
    """SLAYER on the clean test split."""

    accuracy: Fraction
    accuracy_ci: Optional[RateCI] = absent()
    accuracy_by_class: Annotated[Optional[RatesBy], _text("true class -> accuracy on its test samples")] = absent()


@dataclass(kw_only=True)
class CleanDevice(Record):
    """The clean test split replayed on one hardware profile."""

    CLOSED = True
    accuracy: Fraction
    agreement: Annotated[Fraction, _text("fraction of samples whose device prediction equals the offline one")]
    raster_exact: Annotated[Fraction, _text("fraction of samples with identical output rasters")]
    n_samples: Optional[Count] = absent()
    accuracy_ci: Optional[RateCI] = absent()
    agreement_ci: Optional[RateCI] = absent()
    raster_exact_ci: Optional[RateCI] = absent()
    sample_mode: Annotated[Optional[str], _text(
        "how samples met the network: fresh (each as on a freshly loaded netx network, netx's defaults) or "
        "interval (streamed with netx's reset_interval = T); absent: a replay from before the setting")] = absent()


@dataclass(kw_only=True)
class Clean(Record):
    """Clean accuracy offline and per profile."""

    CLOSED = True
    offline: CleanOffline
    device: Annotated[dict[str, CleanDevice], _text("profile name -> clean replay of the whole test split")]


@dataclass(kw_only=True)
class OfflineStats(Record):
    """An attack judged offline (SLAYER), over the rows classified correctly before it."""

    success_rate: Fraction
    mean_l0: Flips
    median_l0: Flips
    median_l0_before_reduction: Annotated[Optional[float], Kw(minimum=0)] = None
    median_flip_rate: Annotated[Optional[float], Kw(minimum=0, maximum=1,
                                                    description="median L0 / elements per sample")] = None
    mean_iterations: Annotated[Optional[float], Kw(minimum=0)] = None
    rsf_iterations: Annotated[Count, _text("total over rows of iterations where RSF replaced G2S")]
    zero_grad_iterations: Annotated[Optional[Count], _text(
        "total over counted rows of iterations whose input gradient was all zero")] = absent()
    success_by_budget: ByBudget
    success_rate_ci: Optional[RateCI] = absent()
    median_l0_ci: Optional[MedianCI] = absent()
    success_by_budget_ci: Optional[RatesBy] = absent()
    success_by_class: Annotated[Optional[RatesBy], _text("true class -> success over its correct rows")] = absent()
    success_by_target: Annotated[Optional[RatesBy], _text(
        "target class -> success over its correct rows (targeted attacks)")] = absent()
    n_failed: Annotated[Optional[Count], _text("correct rows the attack did not fool")] = absent()
    stall_window: Annotated[Optional[int], _text(
        "iterations without a change of prediction and margin that make a failed row stalled")] = absent(nullable=True)
    stalled_rows: Annotated[Optional[Count], _text("failed rows that stalled; null: not tracked")] = absent(
        nullable=True)
    stalled_share: Annotated[Fraction, _text("stalled_rows / n_failed")] = absent(nullable=True)
    stalled_share_ci: Optional[RateCI] = absent()
    zero_grad_share: Annotated[Fraction, _text(
        "share of the failed rows with at least one all-zero input gradient; null: no gradient")] = absent(nullable=True)
    zero_grad_share_ci: Optional[RateCI] = absent()
    budget_curve: Optional[BudgetCurve] = absent()

    def success_at(self, budget: int) -> float | None:
        """Success rate with L0 <= ``budget`` flips (a key of results.json's ``budgets``)."""
        return self.success_by_budget[str(budget)]

    def success_ci_at(self, budget: int) -> "Rate | None":
        """:meth:`success_at` with its counts and interval (None in a file without intervals)."""
        return (self.success_by_budget_ci or {}).get(str(budget))


@dataclass(kw_only=True)
class DeviceStats(Record):
    """An attack's adversarial inputs replayed on one profile (rates over rows the device got right clean)."""

    accuracy: Fraction
    clean_accuracy: Annotated[Fraction, _text("device accuracy on the attacked rows' clean inputs")] = None
    n_correct_clean: Annotated[Optional[Count], _text("rows the device classified correctly when clean")] = absent()
    success_rate: Annotated[Fraction, _text("over rows the device classified correctly when clean")]
    transfer_rate: Annotated[Fraction, _text("offline successes that also succeed on the device, among rows the "
                                             "device classified correctly when clean")]
    activity_change: Annotated[Ratio, _text("spikes of all layers, adversarial / clean")]
    energy_change: Annotated[Ratio, _text("energy estimate, adversarial / clean")]
    success_by_budget: Optional[ByBudget] = absent()
    accuracy_ci: Optional[RateCI] = absent()
    clean_accuracy_ci: Optional[RateCI] = absent()
    success_rate_ci: Optional[RateCI] = absent()
    transfer_rate_ci: Optional[RateCI] = absent()
    success_by_budget_ci: Optional[RatesBy] = absent()
    sample_mode: Annotated[Optional[str], _text(
        "how samples met the network: fresh (each as on a freshly loaded netx network, netx's defaults) or "
        "interval (streamed with netx's reset_interval = T); absent: a replay from before the setting")] = absent()

    @classmethod
    def not_replayed(cls) -> "DeviceStats":
        """Every figure None: what :meth:`Attack.on` gives for a profile without a replay."""
        return cls(accuracy=None, success_rate=None, transfer_rate=None, activity_change=None, energy_change=None)


@dataclass(kw_only=True)
class EnergyAttack(Record):
    """An energy ("sponge") attack or its random baseline: the activity it reached (offline, SLAYER) and, per
    profile, what the device measured (harness.stages.measure.energy_measurements)."""

    objective: Annotated[str, _text("hidden-synops (the hidden layers' spikes x fan-out) or synops (input too)")]
    energy_target: Annotated[Optional[float], _text("activity ratio a row stops at; null: every row runs K")] = None
    n_correct_before: Count
    success_rate: Annotated[Fraction, _text("rows that reached the target (or a ratio above 1 without one)")]
    mean_activity_ratio: Annotated[Optional[float], _text("objective adversarial / clean, mean over rows")] = None
    median_activity_ratio: Optional[float] = None
    prediction_kept: Fraction
    n_prediction_kept: Count
    mean_l0: Optional[float] = None
    activity_by_budget: Annotated[dict[str, Optional[float]], _text("flips -> mean best activity ratio with L0 <= flips")]
    device: Annotated[dict[str, dict[str, Any]], _text(
        "profile -> device figures: clean and adversarial per-inference figures (energy_j, synops, own_synops, "
        "busiest_core_load, latency_proxy, traffic), change (adversarial / clean), energy_rise, offline and device "
        "activity ratio, prediction_kept with its Wilson interval")] = field(default_factory=dict)


@dataclass(kw_only=True)
class Attack(Record):
    """One element of results.json's ``attacks``: an attack set, offline and on each profile."""

    id: str
    method: str
    targeted: bool
    target_mode: Annotated[Optional[str], _text("all / random / least-likely; null when untargeted")] = None
    crafted_on: Annotated[Optional[str], _text(
        "model the gradients came from when it is not this run's (transfer)")] = None
    #: the attack's settings as recorded in its artifact; their keys depend on the method.
    parameters: dict[str, Any]
    n_attacked: Annotated[Count, _text("attacked (sample, target) rows")]
    n_correct_before: Annotated[Count, _text("rows classified correctly before the attack")]
    offline: OfflineStats
    device: Annotated[dict[str, DeviceStats], _text("profile name -> replay of the adversarial inputs")]
    energy: Annotated[Optional[EnergyAttack], _text("energy attacks and their random baselines only")] = absent()

    def on(self, profile: str) -> DeviceStats:
        """The figures on ``profile`` (:meth:`DeviceStats.not_replayed` where there is no replay)."""
        return self.device.get(profile) or DeviceStats.not_replayed()


@dataclass(kw_only=True)
class AnnSettings(Record):
    """The settings of an SNN vs ANN comparison (harness.attacks.ann.ann_comparison)."""

    snn_attack: Optional[str] = absent(nullable=True)
    eps: list[float]
    eps_scale: Annotated[str, Kw(enum=list(EPS_SCALES))]
    seed: Optional[int] = absent()
    code_seed: Optional[int] = absent()
    epochs: Optional[int] = absent(nullable=True)
    n: Optional[Count] = absent()
    steps: Optional[int] = absent()
    step_factor: Optional[float] = absent()


@dataclass(kw_only=True)
class AnnClean(Record):
    """Clean accuracies of the comparison."""

    snn_accuracy: Fraction
    snn_accuracy_rate_coded: Fraction
    ann_accuracy: Fraction


@dataclass(kw_only=True)
class ToSnn(Record):
    """ANN adversarial rates shown to the SNN after Bernoulli rate coding (black box)."""

    accuracy: Fraction
    success_rate: Fraction


@dataclass(kw_only=True)
class AnnWhiteBox(Record):
    """One white-box ANN attack (method, eps) and its transfer to the SNN."""

    method: str
    eps: float
    eps_rate: Optional[float] = absent()
    ann_accuracy: Fraction = absent(nullable=True)
    ann_success_rate: Fraction
    median_equivalent_events: Annotated[Optional[float], Kw(minimum=0)]
    to_snn: ToSnn
    snn_success_at_equal_l0: Fraction = absent(nullable=True)

    @property
    def compared_at_equal_l0(self) -> bool:
        """Whether the SNN attack was measured at this row's L0 (its success may still be undefined)."""
        return self.has("snn_success_at_equal_l0")


@dataclass(kw_only=True)
class SnnToAnn(Record):
    """An SNN attack's adversarial spikes shown to the ANN as rates (black box)."""

    attack_id: Optional[str]
    rows: Optional[Count] = absent()
    ann_accuracy_clean: Fraction = absent(nullable=True)
    snn_success_rate: Fraction
    ann_success_rate: Fraction
    transfer_rate: Fraction
    median_l0: Flips


@dataclass(kw_only=True)
class AnnComparison(Record):
    """One SNN vs ANN comparison (``RUN_DIR/ann/comparison_*.json`` without its timing)."""

    comparison: Annotated[str, _text("file stem in RUN_DIR/ann/")]
    settings: AnnSettings
    model: Optional[str] = absent()
    dataset: Optional[dict[str, Any]] = absent()
    mean_rate: Annotated[float, Kw(minimum=0, maximum=1)]
    max_rate: Optional[Annotated[float, Kw(minimum=0, maximum=1)]] = absent()
    clean: AnnClean
    ann_white_box: list[AnnWhiteBox]
    snn_to_ann: Optional[SnnToAnn]
    notes: Optional[str] = absent()


Versions = Annotated[dict[str, str], Kw(
    description="package -> version of the software that produced the summary",
    required=["python", "harness", "lava-nc", "lava-dl", "torch", "numpy"])]


@dataclass(kw_only=True)
class LayerMapping(Record):
    """One layer on the chip's neurocores (percentages: mean over its cores of each limit's share)."""

    name: str
    cores: Annotated[int, Kw(minimum=1)]
    neurons: Count
    synapses: Annotated[Count, _text("non-zero synapses into the layer (what the device stores)")]
    connections: Count
    neurons_pct: float
    memory_pct: float
    max_fan_in: Count
    fan_in_pct: float
    max_fan_out: Count


@dataclass(kw_only=True)
class MappingSummary(Record):
    """The network's neurocore mapping on the profile's chip (harness.device.mapping)."""

    cores: Annotated[int, Kw(minimum=1)]
    chips: Annotated[int, Kw(minimum=1)]
    system_cores: Annotated[int, _text("cores of the whole system (chips x cores per chip)")]
    mesh_shape: Annotated[list[int], _text("rows, columns of one chip's core mesh; cores are placed row-major in "
                                           "layer order")]
    core_utilisation_pct: float
    links: Count
    mean_hops: Annotated[float, Kw(minimum=0)]
    layers: list[LayerMapping]


@dataclass(kw_only=True)
class PerCore(Record):
    """Means per inference, one value per core of the mapping."""

    synops: list[float]
    spikes_out: list[float]
    spikes_in: list[float]


@dataclass(kw_only=True)
class Inference(Record):
    """Absolute figures per inference, means over the replayed samples (harness.device.workload)."""

    spikes_per_layer: Annotated[list[float], _text("mean spikes of each layer with neurons")]
    synops: Annotated[float, _text("synaptic operations (spikes x fan-out)")]
    energy_j: Annotated[float, _text("joules: per-core energy plus mesh hops (where the chip has a hop energy)")]
    hop_energy_j: float
    traffic_spike_hops: Annotated[float, _text("spikes x mesh hops between source and destination core")]
    busiest_core_load: Annotated[float, _text("the largest synaptic operations one core performs in one step")]
    latency_proxy: Annotated[float, _text("sum over steps of the busiest core's synaptic operations (lock-step)")]
    per_core: PerCore


@dataclass(kw_only=True)
class SynapticOperations(Record):
    effective_acs: Annotated[float, _text("per sample: spikes x fan-out over non-zero synapses")]
    dense: Annotated[float, _text("per sample: every connection once per step")]


@dataclass(kw_only=True)
class NeuroBench(Record):
    """NeuroBench's metrics on the clean test split: synaptic operations and connection sparsity as NeuroBench
    defines them; two figures of the harness's own beside them (harness.device.workload.neurobench_metrics)."""

    device_activation_sparsity: Annotated[Fraction, _text(
        "1 - device spikes / (neurons x T); NeuroBench's ActivationSparsity also counts each layer's last-step "
        "spikes, which SLAYER's one-step delay pushes out of the window")]
    synaptic_operations: SynapticOperations
    weight_bias_bytes: Annotated[Count, _text(
        "weights and biases x 4 bytes; NeuroBench's Footprint also counts the neurons' decays and state buffers")]
    connection_sparsity: Fraction


@dataclass(kw_only=True)
class Hardware(Record):
    """One profile's chip: the mapping and absolute per-inference figures for clean and each attack."""

    mapping: Optional[MappingSummary] = None
    mapping_error: Annotated[Optional[str], _text("why the network does not fit the chip")] = None
    clean: Optional[Inference] = None
    attacks: Annotated[dict[str, Inference], _text("attack id -> its adversarial inputs on this profile")]
    neurobench: Optional[NeuroBench] = None


@dataclass(kw_only=True)
class Results(Record):
    """The whole of results.json."""

    CLOSED = True
    TITLE: ClassVar[str] = "harness results.json"
    DESCRIPTION: ClassVar[str] = (
        "Machine-readable summary of one run directory (one trained model, its attacks and their replays). Rates "
        "are fractions in [0, 1] counted only over samples classified correctly before the attack; null where that "
        "set is empty. Documented in docs/results.md.")

    schema_version: Annotated[int, Kw(const=SCHEMA_VERSION)]
    run: Annotated[Optional[str], _text("name of the run directory")] = absent()
    seed: Annotated[int, _text("training seed of the model (weights, shuffling, rate coding)")]
    versions: Versions
    dataset: Dataset
    model: Model
    budgets: Annotated[Optional[list[Annotated[int, Kw(minimum=1)]]],
                       Kw(minItems=1, description="the flip budgets of every success_by_budget map")] = absent()
    clean: Clean
    attacks: list[Annotated[Attack, Def("attack")]]
    ann: Annotated[list[AnnComparison], _text(
        "SNN vs ANN comparisons of this run (RUN_DIR/ann/comparison_*.json, timing removed); empty when none was "
        "run")] = field(default_factory=list)
    hardware: Annotated[Optional[dict[str, Hardware]], _text(
        "profile name -> neurocore mapping and per-inference hardware figures (profiles with a [chip] table)")] = absent()
    robustness: Annotated[Optional[Robustness], Kw(additionalProperties={"$ref": "#/$defs/robust_verdict"})] = absent()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str | Path = "results.json") -> "Results":
        """Typed results from a results.json dict, checked against the schema first.

        Raises:
            DataError: naming ``where`` and the first place that does not match the schema.
        """
        validate_results(data, where)
        return cls.build(data, str(where))

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        """Read and check ``path`` (a results.json)."""
        from .store import read_json

        return cls.from_dict(read_json(path), path)

    @property
    def profiles(self) -> list[str]:
        """Profiles with a clean replay, in the file's order."""
        return list(self.clean.device)


def as_results(results: Results | Mapping[str, Any], where: str | Path = "results") -> Results:
    """``results`` itself, or a results.json dict parsed by :meth:`Results.from_dict`."""
    return results if isinstance(results, Results) else Results.from_dict(results, where)


# ---------------------------------------------------------------- the schema
def _type_schema(tp, defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of Python type ``tp`` (definitions collected into ``defs``)."""
    if get_origin(tp) is Annotated:
        base, *metadata = get_args(tp)
        out = _type_schema(base, defs)
        for meta in metadata:
            if isinstance(meta, Def):
                if defs.setdefault(meta.name, out) != out:
                    raise ValueError(f"two different definitions named {meta.name!r}")
                out = {"$ref": f"#/$defs/{meta.name}"}
            elif isinstance(meta, Kw):
                out = {**({} if "const" in meta.keywords else out), **meta.keywords}
        return out
    if _is_union(tp):
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return _nullable(_type_schema(inner, defs))
    if isinstance(tp, type) and issubclass(tp, Record):
        return _record_schema(tp, defs)
    origin = get_origin(tp)
    if origin is list:
        return {"type": "array", "items": _type_schema(get_args(tp)[0], defs)}
    if tp is dict or (origin is dict and get_args(tp)[1] is Any):
        return {"type": "object"}  # a free-form object
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(get_args(tp)[1], defs)}
    if tp not in _JSON_TYPES:
        raise TypeError(f"no JSON Schema for the Python type {tp!r}")
    return {"type": _JSON_TYPES[tp]}


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also admits null."""
    if "type" not in schema:
        raise ValueError(f"cannot make {schema} nullable: give the null inside its definition")
    return {**schema, "type": [schema["type"], "null"]}


def _field_type(f: dataclasses.Field, tp):
    """A field's type as the schema sees it: an absent() field admits null only if asked."""
    if not f.metadata.get("omit_none") or f.metadata.get("nullable"):
        return tp
    metadata = []
    while get_origin(tp) is Annotated:
        tp, *more = get_args(tp)
        metadata = more + metadata
    (tp,) = [a for a in get_args(tp) if a is not type(None)]
    return Annotated[(tp, *metadata)] if metadata else tp


def _record_schema(cls: type[Record], defs: dict[str, Any]) -> dict[str, Any]:
    hints = _hints(cls)
    fields = _fields(cls)
    out: dict[str, Any] = {"type": "object"}
    required = [f.name for f in fields if _required(f)]
    if required:
        out["required"] = required
    if cls.CLOSED:
        out["additionalProperties"] = False
    out["properties"] = {f.name: _type_schema(_field_type(f, hints[f.name]), defs) for f in fields}
    return out


def results_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of results.json, generated from :class:`Results`."""
    defs: dict[str, Any] = {}
    body = _record_schema(Results, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": Results.TITLE,
            "description": Results.DESCRIPTION, **body, "$defs": defs}


def schema_text() -> str:
    """:func:`results_schema` as the committed file holds it (indented JSON, final newline)."""
    return json.dumps(results_schema(), indent=2) + "\n"


def load_schema() -> dict[str, Any]:
    """The committed JSON Schema of results.json (harness/schemas/results.schema.json)."""
    return json.loads(resources.files("harness").joinpath(SCHEMA_RESOURCE).read_text())


def validate_results(results: Mapping[str, Any], where: str | Path) -> None:
    """Check ``results`` against the schema.

    Raises:
        DataError: naming ``where``, the JSON path of the first problem and what is wrong.
    """
    validator = jsonschema.Draft202012Validator(load_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(results))
    if error is not None:
        location = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise DataError(f"{where}: does not match the results schema at {location}: {error.message}")


if __name__ == "__main__":
    sys.stdout.write(schema_text())
