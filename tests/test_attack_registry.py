"""The attack registry: every method listed in --help, and each refuses a setting it does not take."""
import pytest

from harness.attacks.interface import NEEDS, THREATS
from harness.attacks.registry import ATTACKS, get
from harness.cli import ATTACK_SETTINGS, main
from harness.errors import ConfigError

#: For each method, one CLI flag it does not take (and the value it is given).
REFUSED = {"g2s-rsf": ("--match", "ID"), "g2s": ("--gamma", "0.1"), "rsf": ("--eta", "0.5"),
           "energy": ("--targeted", "every-other"), "random": ("--eta", "0.5"), "transfer": ("--iterations", "99"),
           "sparse-rs": ("--eta", "0.5"), "pointwise": ("--p-init", "0.1"), "sda": ("--gamma", "0.1"),
           "imported": ("--seed", "1"), "spikefool": ("--gamma", "0.1"), "retime": ("--gamma", "0.1")}


def test_every_method_declares_needs_threat_and_known_settings():
    assert set(REFUSED) == set(ATTACKS)
    for attack in ATTACKS.values():
        assert attack.needs in NEEDS and attack.threat in THREATS
        assert attack.settings <= set(ATTACK_SETTINGS), attack.name


def test_help_lists_every_method(capsys):
    with pytest.raises(SystemExit):
        main(["attack", "--help"])
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in ATTACKS)


@pytest.mark.parametrize("method", sorted(REFUSED))
def test_a_setting_the_method_does_not_take_is_refused(method, tmp_path, capsys):
    flag, value = REFUSED[method]
    assert main(["attack", "--run", str(tmp_path), "--method", method, flag, value]) == 2
    assert f"{flag} is not a setting of method '{method}'" in capsys.readouterr().err


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="available: g2s-rsf, g2s, rsf, energy, random, transfer, sparse-rs, pointwise, sda, imported, spikefool, retime"):
        get("pgd")
