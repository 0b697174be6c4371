"""The ``[chip]`` table of a hardware profile: what one neurocore holds and how cores connect.

::

    [chip]
    neurocores_per_chip = 128
    neurons_per_core = 1024
    synaptic_memory_bits = 1048576      # per core
    weight_bits = 8                      # bits of one synaptic weight
    index_bits = 12                      # per-synapse index of the sparse encoding
    input_axons_per_core = 4096          # fan-in: distinct presynaptic neurons a core can receive from
    output_axons_per_core = 4096         # fan-out: (neuron, destination core) routes a core can send on
    mesh_shape = [8, 16]                 # cores of one chip as rows x columns, rows * columns = neurocores
    chips_per_system = 1
    hop_energy_east_west_j = 3.0e-12     # optional (both or neither): energy of one spike crossing
    hop_energy_north_south_j = 4.0e-12   # one mesh hop between columns / between rows

    [chip.sources]                       # one entry per number: "published: ..." or "derived: ..."
    neurons_per_core = "published: Davies et al., IEEE Micro 2018: 1,024 compartments per core"
    ...

Every number must cite its source in ``[chip.sources]``, labelled ``published`` (a figure the
vendor or a paper states) or ``derived`` (computed from published figures, or a modelling
assumption, with the reasoning). :func:`chip_from_table` refuses a missing limit, a size that
is zero or negative, a wrong type or a missing or unlabelled source, naming the file and key.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..config import check_unknown, require_keys
from ..errors import ConfigError

#: integer limits every chip table must give (all > 0)
INTEGER_KEYS = ("neurocores_per_chip", "neurons_per_core", "synaptic_memory_bits", "weight_bits",
                "input_axons_per_core", "output_axons_per_core", "chips_per_system")
SOURCE_LABELS = ("published", "derived")
#: optional energies of one mesh hop, (east-west, north-south): both or neither
HOP_KEYS = ("hop_energy_east_west_j", "hop_energy_north_south_j")


@dataclass(frozen=True)
class Chip:
    """Per-core limits and mesh of a neuromorphic chip (a profile's ``[chip]`` table).

    Attributes:
        neurocores_per_chip: neurocores on one chip.
        neurons_per_core: neurons (compartments) one core holds.
        synaptic_memory_bits: synaptic memory of one core, in bits.
        weight_bits: bits of one stored weight.
        index_bits: per-synapse overhead of the sparse encoding in bits (the index of the
            synapse's input axon); the dense encoding stores weights by position, none.
        input_axons_per_core: distinct presynaptic neurons (input axons) one core can receive.
        output_axons_per_core: routes one core can send on: one per (neuron, destination core).
        mesh_shape: (rows, columns) of one chip's cores; rows * columns = neurocores_per_chip.
        chips_per_system: chips a network may spread over; chips sit side by side in one row
            of the system mesh, so the mesh of the system is rows x (columns * chips).
        hop_energy_j: joules per spike per mesh hop (east-west: between columns, north-south:
            between rows), or None when the profile has no figure.
        sources: where each number comes from, "published: ..." or "derived: ...".
    """

    neurocores_per_chip: int
    neurons_per_core: int
    synaptic_memory_bits: int
    weight_bits: int
    index_bits: int
    input_axons_per_core: int
    output_axons_per_core: int
    mesh_shape: tuple[int, int]
    chips_per_system: int
    hop_energy_j: tuple[float, float] | None
    sources: dict[str, str]

    @property
    def bits_per_synapse(self) -> int:
        """Memory one synapse costs in the sparse encoding: weight bits plus index bits."""
        return self.weight_bits + self.index_bits

    @property
    def synapses_per_core(self) -> int:
        """The most synapses one core's memory holds in the sparse encoding."""
        return self.synaptic_memory_bits // self.bits_per_synapse

    def memory_bits(self, synapses, connections):
        """Synaptic memory in bits of ``synapses`` non-zero synapses out of ``connections``
        (zero weights included), in the smaller encoding: dense (every connection at
        ``weight_bits``) or sparse (every non-zero synapse at ``weight_bits + index_bits``).
        Works on ints and numpy arrays alike."""
        return np.minimum(np.asarray(connections) * self.weight_bits, np.asarray(synapses) * self.bits_per_synapse)

    @property
    def cores(self) -> int:
        """Neurocores of the whole system."""
        return self.neurocores_per_chip * self.chips_per_system

    def position(self, core: int) -> tuple[int, int, int]:
        """(chip, row, column) of global core number ``core`` (row-major on each chip)."""
        chip, local = divmod(core, self.neurocores_per_chip)
        row, column = divmod(local, self.mesh_shape[1])
        return chip, row, column

    def hops(self, a: int, b: int) -> int:
        """Mesh hops between cores ``a`` and ``b``: Manhattan distance on the system mesh
        (chips side by side in one row, so crossing a chip boundary costs the columns between)."""
        (chip_a, row_a, col_a), (chip_b, row_b, col_b) = self.position(a), self.position(b)
        columns = self.mesh_shape[1]
        return abs(row_a - row_b) + abs((chip_a * columns + col_a) - (chip_b * columns + col_b))

    def route_energy(self, a: int, b: int) -> float:
        """Joules of one spike from core ``a`` to core ``b``: the column hops (east-west) and the row
        hops (north-south) of :meth:`hops`, each at its direction's energy; 0 without a figure."""
        if self.hop_energy_j is None:
            return 0.0
        (chip_a, row_a, col_a), (chip_b, row_b, col_b) = self.position(a), self.position(b)
        columns = self.mesh_shape[1]
        east_west, north_south = self.hop_energy_j
        return (abs((chip_a * columns + col_a) - (chip_b * columns + col_b)) * east_west
                + abs(row_a - row_b) * north_south)

    def to_dict(self) -> dict:
        """JSON-friendly form (stored with replay outputs and mappings), the keys of a ``[chip]`` table."""
        out = {key: value for key, value in asdict(self).items() if value is not None}  # optional limits unset
        out["mesh_shape"] = list(self.mesh_shape)
        if out.pop("hop_energy_j", None) is not None:  # the table's keys, so that chip_from_table reads it back
            out.update(zip(HOP_KEYS, self.hop_energy_j))
        return out


def _positive_int(table: dict, key: str, where: str, minimum: int = 1) -> int:
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{where}: {key} must be >= {minimum}, got {value}")
    return value


def _hop_energies(table: dict, where: str) -> tuple[float, float] | None:
    """The (east-west, north-south) hop energies of ``table``, or None when it gives neither."""
    given = [key for key in HOP_KEYS if key in table]
    if not given:
        return None
    if len(given) == 1:
        raise ConfigError(f"{where}: {given[0]} needs {(set(HOP_KEYS) - set(given)).pop()} too (hop energies "
                          "are given per direction)")
    for key in HOP_KEYS:
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{where}: {key} must be a non-negative number of joules, got {value!r}")
    return float(table[HOP_KEYS[0]]), float(table[HOP_KEYS[1]])


def _sources(table: dict, numbers: list[str], where: str) -> dict[str, str]:
    sources = table.get("sources")
    if not isinstance(sources, dict):
        raise ConfigError(f"{where}: [chip.sources] table missing; every number must cite its source")
    check_unknown(sources, set(numbers), f"{where}.sources")
    for key in numbers:
        text = sources.get(key)
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}.sources: {key} has no source; give \"published: ...\" or \"derived: ...\"")
        if text.split(":", 1)[0].strip().lower() not in SOURCE_LABELS:
            raise ConfigError(f"{where}.sources: {key} must start with 'published:' or 'derived:', got {text!r}")
    return {key: sources[key].strip() for key in numbers}


def chip_from_table(table: dict, where: str) -> Chip:
    """Validate a profile's ``[chip]`` table.

    Args:
        table: the parsed table.
        where: the file and table, e.g. "hw_profiles/loihi1.toml [chip]", for the messages.
    Raises:
        ConfigError: naming ``where`` and the key, for a missing limit, a zero or negative
            size, a wrong type, a mesh that does not hold the chip's cores, or a number
            without a labelled source.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [chip] must be a table")
    optional = {"index_bits", *HOP_KEYS}
    check_unknown(table, set(INTEGER_KEYS) | optional | {"mesh_shape", "sources"}, where)
    require_keys(table, list(INTEGER_KEYS) + ["mesh_shape"], where)
    values = {key: _positive_int(table, key, where) for key in INTEGER_KEYS}
    values["index_bits"] = _positive_int(table, "index_bits", where, minimum=0) if "index_bits" in table else 0
    mesh = table["mesh_shape"]
    if (not isinstance(mesh, list) or len(mesh) != 2
            or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in mesh)):
        raise ConfigError(f"{where}: mesh_shape must be [rows, columns] of positive integers, got {mesh!r}")
    if mesh[0] * mesh[1] != values["neurocores_per_chip"]:
        raise ConfigError(f"{where}: mesh_shape {mesh[0]} x {mesh[1]} holds {mesh[0] * mesh[1]} cores, "
                          f"but neurocores_per_chip is {values['neurocores_per_chip']}")
    hop = _hop_energies(table, where)
    numbers = [key for key in (*INTEGER_KEYS, "index_bits", "mesh_shape", *HOP_KEYS) if key in table]
    if values["synaptic_memory_bits"] < values["weight_bits"]:
        raise ConfigError(f"{where}: synaptic_memory_bits ({values['synaptic_memory_bits']}) cannot hold "
                          f"one weight of {values['weight_bits']} bits")
    return Chip(mesh_shape=(mesh[0], mesh[1]), hop_energy_j=hop,
                sources=_sources(table, numbers, where), **values)
