"""Golden digests: every attack of the registry gives the adversarial spikes and ids of the code
before the registry (digests computed on commit ad7e1bf with the same seeded runs)."""
import hashlib

import numpy as np
import pytest
import torch

from harness.attacks.interface import Job
from harness.attacks.registry import get
from harness.records import AttackRecord
from harness.train import train_run

#: (method, settings) -> (attack id, sha256[:16] of adversarial spikes + l0 + success) on ad7e1bf.
GOLDEN = {
    "dense": ("g2s-rsf_u_k6_g0.05_e1_sr_n12_s0", "a3affd6187f1196a"),
    "sparse": ("g2s-rsf_u_k6_g0.05_e0.3_red_sr_n12_s0", "e2f0d1fdc188b040"),
    "energy": ("g2s-rsf_u_k4_g0.05_e1_en_n12_s0", "55612ba8b788e34b"),
    "random": ("random_s0_g2s-rsf_u_k6_g0.05_e1_sr_n12_s0", "bf76e60c7b856597"),
    "transfer": ("g2s-rsf_u_k6_g0.05_e1_sr_n12_s0_from_a-", "e529d139b135171f"),
}


def _digest(path):
    record = AttackRecord.load(path)
    h = hashlib.sha256()
    for array in (record.adversarial, record.l0, record.success):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """Every attack of GOLDEN through the registry on two seeded digits runs (1 epoch each)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float sums, and so the spikes, may depend on the thread count
    try:
        root = tmp_path_factory.mktemp("golden")
        a, b = root / "a", root / "b"
        train_run("digits-mlp", a, seed=0, epochs=1, progress=False)
        train_run("digits-mlp", b, seed=1, epochs=1, progress=False)
        job = Job(a, progress=False)
        out = {"dense": get("g2s-rsf").run(job, {"iterations": 6, "n": 12}),
               "sparse": get("g2s-rsf").run(job, {"eta": 0.3, "iterations": 6, "reduce": True, "n": 12}),
               "energy": get("energy").run(job, {"iterations": 4, "n": 12})}
        out["random"] = get("random").run(job, {"match": out["dense"].stem, "seed": 0})
        out["transfer"] = get("transfer").run(Job(b, progress=False), {"transfer_from": out["dense"]})
        return out
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("attack", sorted(GOLDEN))
def test_spikes_and_id_are_those_of_the_code_before_the_registry(paths, attack):
    attack_id, digest = GOLDEN[attack]
    stem = paths[attack].stem
    # transfer's id ends in a hash of the source run's path (a temporary folder here)
    assert stem.startswith(attack_id) if attack == "transfer" else stem == attack_id
    assert _digest(paths[attack]) == digest
