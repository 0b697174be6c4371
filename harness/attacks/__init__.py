"""Spike-domain adversarial attacks (../shared/notes/attack-spec.md) and their baselines.

- :func:`craft` with an :class:`AttackConfig`: the batched G2S + RSF attack (also G2S alone,
  RSF alone, sparse mode with step scale and reduction, budgets, attack-time threshold);
- :func:`random_flips`: random flips at a given per-sample L0;
- :func:`transfer`: judge an adversarial set on another model;
- :func:`run_attack`, :func:`run_random_baseline`, :func:`run_transfer`: the same on a run
  directory, writing ``RUN_DIR/attacks/<id>.h5`` (an :class:`AttackRecord`);
- :mod:`harness.attacks.ann`: the ANN twin, FGSM/BIM/PGD and black-box transfer both ways;
- :func:`g2s`, :func:`rsf`, :func:`apply_update`: the pure building blocks.

Example::

    from harness.attacks import AttackConfig, AttackRecord, run_attack
    path = run_attack("runs/digits", AttackConfig(iterations=25), targeted=None)
    record = AttackRecord.load(path)
    print(record.stats()["success_rate"])
"""
from .baselines import random_flips
from .g2s import apply_update, g2s
from .loop import METHODS, AttackConfig, craft
from ..records import AttackRecord, is_success
from .rsf import rsf
from .runner import attack_id, format_summary, run_attack, run_random_baseline, run_transfer
from .targets import TARGET_MODES, expand_targets
from .transfer import transfer

__all__ = ["AttackConfig", "AttackRecord", "METHODS", "TARGET_MODES", "apply_update", "attack_id", "craft",
           "expand_targets", "format_summary", "g2s", "is_success", "random_flips", "rsf", "run_attack",
           "run_random_baseline", "run_transfer", "transfer"]
