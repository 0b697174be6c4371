"""The [chip] table of hardware profiles: shipped figures, validation of bad tables, mesh hops."""
from __future__ import annotations

import pytest

from harness.device.chip import chip_from_table
from harness.device.profiles import available_profiles, load_profile
from harness.errors import ConfigError

SOURCES = "\n".join(f'{key} = "derived: test"' for key in (
    "neurocores_per_chip", "neurons_per_core", "synaptic_memory_bits", "weight_bits", "index_bits",
    "input_axons_per_core", "output_axons_per_core", "mesh_shape", "chips_per_system", "hop_energy_east_west_j",
    "hop_energy_north_south_j"))
VALID = f"""
name = "chip-test"
[backend]
kind = "lava-sim"
select_tag = "fixed_pt"
[energy]
synaptic_op_j = 1e-12
neuron_update_j = 2e-12
spike_j = 0.0
source = "made up for a test"
[chip]
neurocores_per_chip = 6
neurons_per_core = 4
synaptic_memory_bits = 96
weight_bits = 8
index_bits = 4
input_axons_per_core = 10
output_axons_per_core = 10
mesh_shape = [2, 3]
chips_per_system = 2
hop_energy_east_west_j = 3e-12
hop_energy_north_south_j = 4e-12
[chip.sources]
{SOURCES}
"""


def test_shipped_profiles_have_cited_chip_tables():
    for name in available_profiles():
        chip = load_profile(name).chip
        assert chip is not None and chip.neurocores_per_chip == 128
        assert all(text.split(":")[0] in ("published", "derived") for text in chip.sources.values())
    loihi1 = load_profile("loihi1").chip
    assert (loihi1.neurons_per_core, loihi1.synaptic_memory_bits, loihi1.input_axons_per_core) == (1024, 2**20, 4096)
    assert loihi1.sources["neurons_per_core"].startswith("published")
    assert loihi1.hop_energy_j == pytest.approx((3.0e-12, 4.0e-12))  # Davies et al. 2018 Table 2
    loihi2 = load_profile("loihi2-fixed").chip
    assert loihi2.neurons_per_core == 8192 and loihi2.sources["neurons_per_core"].startswith("derived")
    assert loihi2.hop_energy_j is None


def test_valid_table_parses_and_computes_mesh_hops(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(VALID)
    chip = load_profile(path).chip
    assert chip.bits_per_synapse == 12 and chip.synapses_per_core == 8 and chip.cores == 12
    assert chip.memory_bits(5, 10) == 60 and chip.memory_bits(7, 10) == 80  # sparse 5 x 12, dense 10 x 8
    assert chip.position(4) == (0, 1, 1) and chip.position(7) == (1, 0, 1)
    assert chip.hops(0, 5) == 1 + 2          # (0,0) -> (1,2) on chip 0
    assert chip.hops(2, 6) == 1              # last column of chip 0 -> first column of chip 1
    assert chip.hops(3, 11) == 5             # (row 1, col 0) -> chip 1 (row 1, col 2): 5 columns
    assert chip.route_energy(0, 5) == pytest.approx(2 * 3e-12 + 1 * 4e-12)  # 2 east-west hops, 1 north-south
    assert chip.route_energy(3, 11) == pytest.approx(5 * 3e-12)
    assert load_profile(path).to_dict()["chip"]["mesh_shape"] == [2, 3]
    table = load_profile(path).to_dict()["chip"]
    assert (table["hop_energy_east_west_j"], table["hop_energy_north_south_j"]) == (3e-12, 4e-12)
    assert chip_from_table(table, "round trip") == chip


@pytest.mark.parametrize("old, new, message", [
    ("neurons_per_core = 4\n", "", r"\[chip\]: missing required key\(s\): neurons_per_core"),
    ("synaptic_memory_bits = 96", "synaptic_memory_bits = -96", "synaptic_memory_bits must be >= 1, got -96"),
    ("neurons_per_core = 4", "neurons_per_core = 0", "neurons_per_core must be >= 1, got 0"),
    ("input_axons_per_core = 10", 'input_axons_per_core = "many"', "input_axons_per_core must be an integer"),
    ("weight_bits = 8", "weight_bits = 8.5", "weight_bits must be an integer"),
    ("index_bits = 4", "index_bits = -1", "index_bits must be >= 0"),
    ("mesh_shape = [2, 3]", "mesh_shape = [2, 2]", "mesh_shape 2 x 2 holds 4 cores, but neurocores_per_chip is 6"),
    ("mesh_shape = [2, 3]", "mesh_shape = 6", r"mesh_shape must be \[rows, columns\]"),
    ("hop_energy_east_west_j = 3e-12", "hop_energy_east_west_j = -1.0", "hop_energy_east_west_j must be a non-negative"),
    ("hop_energy_north_south_j = 4e-12\n", "", "hop_energy_east_west_j needs hop_energy_north_south_j too"),
    ("chips_per_system = 2", "chips_per_system = 2\nneurons = 3", r"unknown key\(s\) neurons"),
    ('weight_bits = "derived: test"', 'weight_bits = "from a blog"', "weight_bits must start with 'published:'"),
    ('weight_bits = "derived: test"\n', "", "sources: weight_bits has no source"),
    ("synaptic_memory_bits = 96", "synaptic_memory_bits = 4", "cannot hold one weight of 8 bits"),
])
def test_bad_chip_tables_name_the_file_and_the_key(tmp_path, old, new, message):
    assert old in VALID
    path = tmp_path / "bad.toml"
    path.write_text(VALID.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message) as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_chip_table_without_sources_is_refused():
    table = {"neurocores_per_chip": 1, "neurons_per_core": 1, "synaptic_memory_bits": 8, "weight_bits": 8,
             "input_axons_per_core": 1, "output_axons_per_core": 1, "mesh_shape": [1, 1], "chips_per_system": 1}
    with pytest.raises(ConfigError, match=r"x \[chip\]: \[chip.sources\] table missing"):
        chip_from_table(table, "x [chip]")
