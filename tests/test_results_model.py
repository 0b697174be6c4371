"""The typed definition of results.json (harness.results_model), its generated schema, and harness.fmt."""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Optional

import jsonschema
import pytest

from harness import fmt
from harness.errors import DataError
from harness.results_model import (EPS_SCALES, Attack, Def, DeviceStats, Kw, Record, Results, absent, as_results,
                                   load_schema, results_schema, schema_text, validate_results)


def _attack(attack_id: str = "a", device: dict | None = None) -> dict:
    return {"id": attack_id, "method": "g2s-rsf", "targeted": False, "target_mode": None, "crafted_on": None,
            "parameters": {"iterations": 25, "reduce": True}, "n_attacked": 6, "n_correct_before": 4,
            "offline": {"success_rate": 0.75, "mean_l0": 3.5, "median_l0": 2.0, "median_l0_before_reduction": 4.0,
                        "median_flip_rate": 0.01, "mean_iterations": 7.75, "rsf_iterations": 8,
                        "zero_grad_iterations": 8, "success_by_budget": {"1": 0.25, "10": None}},
            "device": {"loihi2-fixed": {"accuracy": 0.5, "clean_accuracy": 0.8, "n_correct_clean": 5,
                                        "success_rate": 0.2, "transfer_rate": None, "activity_change": 1.5,
                                        "energy_change": None, "success_by_budget": {"1": 0.2, "10": 0.2}}}
            if device is None else device}


def _ann() -> dict:
    row = {"method": "pgd", "eps": 0.05, "eps_rate": 0.05, "ann_accuracy": 0.5, "ann_success_rate": 0.3,
           "median_equivalent_events": None, "to_snn": {"accuracy": 0.8, "success_rate": 0.1},
           "snn_success_at_equal_l0": 0.3}
    return {"comparison": "comparison_absolute_s0_c0_a",
            "settings": {"snn_attack": "a", "eps": [0.05], "eps_scale": "absolute", "seed": 0, "epochs": None},
            "model": "tiny", "dataset": {"dataset": "digits"}, "mean_rate": 0.3, "max_rate": 1.0,
            "clean": {"snn_accuracy": 0.9, "snn_accuracy_rate_coded": 0.85, "ann_accuracy": 0.95},
            "ann_white_box": [row, {**{k: v for k, v in row.items() if k != "snn_success_at_equal_l0"},
                                    "method": "fgsm"}],  # fgsm: not compared at equal L0
            "snn_to_ann": {"attack_id": "a", "rows": 6, "ann_accuracy_clean": None, "snn_success_rate": 0.75,
                           "ann_success_rate": 0.2, "transfer_rate": 0.25, "median_l0": 2.0},
            "notes": "text", "a_newer_key": [1, 2]}


def _results() -> dict:
    """A small valid results.json, in the key order results.py writes."""
    return {"schema_version": 1, "run": "tiny", "seed": 3,
            "versions": {p: "1" for p in ("python", "harness", "lava-nc", "lava-dl", "torch", "numpy", "h5py")},
            "dataset": {"dataset": "digits", "encoding": "bernoulli-rate", "dt_ms": 1.0, "sensor_size": [8, 8, 1],
                        "seed": None, "shape": [1, 8, 8, 4], "path": None, "n_train": 10, "n_test": 5},
            "model": {"name": "tiny", "T": 4, "train_accuracy": 0.9, "test_accuracy": 0.75, "loss": "spike-rate",
                      "surrogate": "slayer", "epochs": 2},
            "budgets": [1, 10],
            "clean": {"offline": {"accuracy": 0.75},
                      "device": {"loihi2-fixed": {"accuracy": 0.7, "agreement": 1.0, "raster_exact": 0.5,
                                                  "n_samples": 5}}},
            "attacks": [_attack("a"), _attack("b", device={})],
            "ann": [_ann()]}


def _parent(data: dict, path: tuple):
    """The object holding ``path[-1]`` in ``data``."""
    for key in path[:-1]:
        data = data[key]
    return data


def test_committed_schema_is_the_generated_one():
    """Regenerate with: python -m harness.results_model > harness/schemas/results.schema.json"""
    committed = resources.files("harness").joinpath("schemas/results.schema.json").read_text()
    assert committed == schema_text()
    assert load_schema() == results_schema()
    jsonschema.Draft202012Validator.check_schema(results_schema())


def test_round_trip_keeps_every_key_in_order():
    data = _results()
    results = Results.from_dict(data)
    assert json.dumps(results.to_dict()) == json.dumps(data)  # same keys, values and order
    assert results.ann[0].extra == {"a_newer_key": [1, 2]}  # an open object keeps what it does not know


def test_typed_access():
    results = Results.from_dict(_results())
    a, b = results.attacks
    assert results.model.T == 4 and results.dataset.dt_ms == 1.0 and results.profiles == ["loihi2-fixed"]
    assert a.offline.success_at(1) == 0.25 and a.offline.success_at(10) is None
    assert a.on("loihi2-fixed").activity_change == 1.5
    assert b.on("loihi2-fixed") == DeviceStats.not_replayed() and b.on("loihi2-fixed").transfer_rate is None
    comparison = results.ann[0]
    assert comparison.settings.eps_scale == "absolute" and comparison.snn_to_ann.transfer_rate == 0.25
    assert [r.snn_success_at_equal_l0 for r in comparison.ann_white_box] == [0.3, None]
    assert as_results(results) is results


def test_missing_optional_keys_stay_missing():
    data = _results()
    del data["run"], data["budgets"], data["ann"], data["model"]["loss"]
    del data["attacks"][0]["offline"]["zero_grad_iterations"]
    results = Results.from_dict(data)
    assert results.run is None and results.budgets is None and results.ann == [] and results.model.loss is None
    out = results.to_dict()
    assert "run" not in out and "budgets" not in out and "loss" not in out["model"]
    assert "zero_grad_iterations" not in out["attacks"][0]["offline"]
    assert out["ann"] == []  # a default list is written


@pytest.mark.parametrize("path, value, message", [
    (("schema_version",), 2, "schema_version: 1 was expected"),
    (("attacks", 0, "offline", "success_rate"), 1.5, "attacks/0/offline/success_rate"),
    (("attacks", 0, "device", "loihi2-fixed", "activity_change"), -1, "activity_change"),
    (("attacks", 0, "offline", "success_by_budget"), {"01": 0.5}, "success_by_budget"),
    (("attacks", 0, "offline", "success_by_budget"), {}, "success_by_budget"),
    (("attacks", 0, "offline", "median_flip_rate"), 2.0, "median_flip_rate"),
    (("attacks", 0, "n_attacked"), -1, "n_attacked"),
    (("attacks", 0, "targeted"), "no", "targeted"),
    (("dataset", "dt_ms"), 0, "dt_ms"),
    (("dataset", "shape"), [0, 4], "shape/0"),
    (("model", "T"), 0, "model/T"),
    (("run",), None, "run"),  # may be missing, not null
    (("budgets",), [], "budgets"),
    (("clean", "device", "loihi2-fixed", "extra"), 1, "loihi2-fixed"),  # a closed object
    (("ann", 0, "settings", "eps_scale"), "relative", "eps_scale"),
    (("ann", 0, "mean_rate"), 2.0, "mean_rate"),
    (("ann", 0, "snn_to_ann", "attack_id"), 3, "attack_id"),
])
def test_schema_keeps_its_constraints(path, value, message):
    data = _results()
    _parent(data, path)[path[-1]] = value
    with pytest.raises(DataError, match=message) as info:
        Results.from_dict(data, "some/results.json")
    assert str(info.value).startswith("some/results.json: does not match the results schema at ")


@pytest.mark.parametrize("path", [("seed",), ("versions", "torch"), ("dataset", "n_test"), ("attacks", 0, "device"),
                                  ("attacks", 0, "offline", "rsf_iterations"), ("clean", "device"),
                                  ("ann", 0, "mean_rate"), ("ann", 0, "ann_white_box", 0, "to_snn")])
def test_required_keys(path):
    data = _results()
    del _parent(data, path)[path[-1]]
    with pytest.raises(DataError, match=f"'{path[-1]}' is a required property"):
        validate_results(data, "x")


def test_nullable_fields_take_null():
    data = _results()
    data["dataset"]["seed"] = data["dataset"]["path"] = None
    data["attacks"][0]["offline"].update(success_rate=None, mean_l0=None, median_l0=None)
    data["ann"][0]["snn_to_ann"] = None
    assert Results.from_dict(data).ann[0].snn_to_ann is None


def test_build_names_the_key_without_a_schema():
    data = copy.deepcopy(_attack())
    del data["offline"]["median_l0"]
    with pytest.raises(DataError, match=r"attack 3/offline: missing required key 'median_l0'"):
        Attack.build(data, "attack 3")
    with pytest.raises(DataError, match="attack 3/device: expected an object, got list"):
        Attack.build({**_attack(), "device": []}, "attack 3")


def test_eps_scales_agree_with_the_ann_stage():
    from harness.attacks.ann import EPS_SCALES as stage_scales

    assert EPS_SCALES == stage_scales


# ---------------------------------------------------------------- the mapping rules on a toy record
@dataclass(kw_only=True)
class _Inner(Record):
    CLOSED = True
    x: int


Half = Annotated[Optional[float], Kw(maximum=0.5), Def("half")]


@dataclass(kw_only=True)
class _Toy(Record):
    required: Annotated[int, Kw(minimum=0, description="d")]
    nullable: Optional[str] = None
    may_be_missing: Optional[str] = absent()
    missing_or_null: Optional[int] = absent(nullable=True)
    half: Annotated[Half, Kw(description="at the use site")]
    halves: dict[str, Half]
    inner: list[_Inner]
    free: dict


def test_mapping_rules():
    from harness.results_model import _record_schema

    defs: dict = {}
    assert _record_schema(_Toy, defs) == {
        "type": "object", "required": ["required", "half", "halves", "inner", "free"], "properties": {
            "required": {"type": "integer", "minimum": 0, "description": "d"},
            "nullable": {"type": ["string", "null"]},
            "may_be_missing": {"type": "string"},
            "missing_or_null": {"type": ["integer", "null"]},
            "half": {"$ref": "#/$defs/half", "description": "at the use site"},
            "halves": {"type": "object", "additionalProperties": {"$ref": "#/$defs/half"}},
            "inner": {"type": "array", "items": {"type": "object", "required": ["x"], "additionalProperties": False,
                                                 "properties": {"x": {"type": "integer"}}}},
            "free": {"type": "object"}}}
    assert defs == {"half": {"type": ["number", "null"], "maximum": 0.5}}
    toy = _Toy.build({"required": 1, "half": 0.5, "halves": {}, "inner": [{"x": 2}], "free": {"k": 1}})
    assert toy.inner == [_Inner(x=2)] and toy.may_be_missing is None
    assert toy.to_dict() == {"required": 1, "nullable": None, "half": 0.5, "halves": {}, "inner": [{"x": 2}],
                             "free": {"k": 1}}
    with pytest.raises(DataError, match=r"toy/inner/0: unexpected keys \['y'\]"):
        _Toy.build({"required": 1, "half": 0.5, "halves": {}, "inner": [{"x": 2, "y": 3}], "free": {}}, "toy")


# ---------------------------------------------------------------- harness.fmt
@pytest.mark.parametrize("value, text", [(0.1234, "12.3%"), (1, "100.0%"), (0, "0.0%"), (None, "n/a"),
                                         (math.nan, "n/a")])
def test_pct(value, text):
    assert fmt.pct(value) == text


def test_num_times_and_small_pct():
    assert fmt.num(1234567) == "1,234,567" and fmt.num(2.345, 1) == "2.3" and fmt.num(None) == "n/a"
    assert fmt.times(1.234) == "1.23x" and fmt.times(math.nan) == "n/a"
    assert fmt.pct(0.000123456, small=True) == "0.0123%"


def test_one_formatting_module():
    """The report, the attack summaries and the experiment's stage lines all use harness.fmt."""
    from harness.attacks import runner
    from harness.report import sections

    assert runner.fmt_pct is fmt.pct and runner.fmt_count is fmt.num
    assert sections.pct is fmt.pct and sections.num is fmt.num and sections.times is fmt.times
