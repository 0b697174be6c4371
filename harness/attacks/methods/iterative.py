"""The G2S/RSF family: g2s-rsf (the paper's attack), g2s (no RSF) and rsf (RSF alone)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...settings import build, cli_flag
from ..interface import Attack, Job
from ..loop import AttackConfig
from ..runner import run_attack

_ALL = frozenset(AttackConfig.__dataclass_fields__) - {"method"} | {"targeted", "n", "profile", "non_adaptive"}
_RUN_KEYS = ("targeted", "n", "profile", "non_adaptive")


def attacked_filter(values: dict[str, Any]):
    """The event filter the attack crafts through: the ``profile``'s ``[input_filter]`` (None: the
    profile has none, no profile is given, or ``non_adaptive`` asks to attack the bare network)."""
    from ...device.profiles import load_profile

    if values.get("non_adaptive") and values.get("profile") is None:
        raise ConfigError(f"{cli_flag('non_adaptive')} needs {cli_flag('profile')}: the profile whose filter the "
                          "attack ignores (its replay on that profile applies the filter)")
    if values.get("non_adaptive") or values.get("profile") is None:
        return None
    return load_profile(values["profile"]).input_filter


class Iterative(Attack):
    """An iterative method of :func:`harness.attacks.loop.craft`; ``name`` is the config's ``method``."""

    needs = "gradients"

    def config(self, values: dict[str, Any], name_of=cli_flag, where: str = "") -> AttackConfig:
        """The :class:`AttackConfig` of the settings ``values`` (run keys ``targeted`` and ``n`` left out);
        an error names the setting by ``name_of`` after ``where`` (the file and table)."""
        settings = {k: v for k, v in values.items() if k not in _RUN_KEYS}
        return build(AttackConfig, {**settings, "method": self.method}, name_of, where)

    method = property(lambda self: self.name)

    def run(self, job: Job, values: dict[str, Any]) -> Path:
        config = self.config(values)
        return run_attack(job.run_dir, config, targeted=values.get("targeted"), n=values.get("n"),
                          batch_size=job.batch_size, force=job.force, progress=job.progress,
                          data_path=job.data_path, device=job.device, method=self.name, threat=config.threat,
                          input_filter=attacked_filter(values))


class G2sRsf(Iterative):
    name, summary, settings = "g2s-rsf", "G2S, RSF where the gradient is all zero (the paper's attack)", _ALL


class G2s(Iterative):
    name, summary = "g2s", "G2S alone: an all-zero gradient changes nothing"
    settings = _ALL - {"gamma", "rsf_trigger_ratio"}


class Rsf(Iterative):
    name, summary = "rsf", "RSF every iteration (random flips, no gradient)"
    needs = "scores"  # forward passes of the network only
    settings = _ALL - {"eta", "rsf_trigger_ratio", "attack_threshold", "threshold_mode", "surrogate"}
