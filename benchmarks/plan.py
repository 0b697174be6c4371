"""What the benchmarks run on: sizes and models (the full plan of ``make bench``, and a
tiny one for the smoke test), and where trained models and data live."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import DataError
from harness.models import load_spec

from .common import trained_model

SEED = 0  # seeds every model, attack and data coding of a benchmark run


@dataclass(frozen=True)
class Plan:
    """Sizes of one benchmark run.

    Attributes:
        name: "full" or "smoke".
        repeats: repetitions of every timed run (the median is reported).
        budget_s: a timed run is not repeated once its runs took this many seconds together
            (see :func:`benchmarks.common.interleaved`).
        epochs: training epochs of the cached models (None: each spec's own).
        attack_model: model attacked; attack_samples: test-then-train samples attacked batched
            (in both modes); attack_baseline_samples: the systematic subsample of them also
            attacked one at a time.
        replay_model: model replayed; replay_samples: its test samples replayed by the
            harness (None: the whole test split); naive_samples: the first ones of them that
            the naive baseline replays.
        scaling_model / scaling_sizes: model and sample counts of the scaling benchmark
            (drawn from the train and test splits together).
        training_model / training_epochs: the training-throughput run.
        ray_model / ray_cells / ray_epochs / ray_attack_samples: the Ray benchmark's study
            (that many seeds of the model, each trained for that many epochs, attacked on that
            many test samples and replayed on loihi2-fixed).
    """

    name: str
    repeats: int
    budget_s: float
    epochs: int | None
    attack_model: str
    attack_samples: int
    attack_baseline_samples: int
    replay_model: str
    replay_samples: int | None
    naive_samples: int
    scaling_model: str
    scaling_sizes: tuple[int, ...]
    training_model: str
    training_epochs: int
    ray_model: str = "digits-mlp"
    ray_cells: int = 6
    ray_epochs: int = 20
    ray_attack_samples: int = 100


FULL = Plan(name="full", repeats=3, budget_s=45.0, epochs=None,
            attack_model="nmnist-mlp", attack_samples=300, attack_baseline_samples=100,
            replay_model="digits-mlp", replay_samples=None, naive_samples=24,
            scaling_model="nmnist-mlp", scaling_sizes=(100, 300, 1000),
            training_model="nmnist-mlp", training_epochs=2)

SMOKE = Plan(name="smoke", repeats=1, budget_s=0.0, epochs=5,
             attack_model="digits-mlp", attack_samples=8, attack_baseline_samples=4,
             replay_model="digits-mlp", replay_samples=8, naive_samples=2,
             scaling_model="digits-mlp", scaling_sizes=(4, 8),
             training_model="digits-mlp", training_epochs=1,
             ray_cells=2, ray_epochs=1, ray_attack_samples=6)

PLANS = {plan.name: plan for plan in (FULL, SMOKE)}


@dataclass(frozen=True)
class Setup:
    """A plan plus the places a run reads and writes.

    Attributes:
        cache: directory of the trained models (reused across runs).
        nmnist: the N-MNIST directory (list-file or official layout).
        progress: show progress bars.
    """

    plan: Plan
    cache: Path
    nmnist: Path
    progress: bool

    def model(self, name: str) -> Path:
        """Run directory of model ``name`` trained with the plan's epochs (trained now if absent)."""
        self.require_data(name)
        return trained_model(name, self.cache, SEED, self.plan.epochs, self.nmnist, self.progress)

    def require_data(self, model: str) -> None:
        """DataError naming the option to use when ``model`` needs N-MNIST and it is not there."""
        if load_spec(model).dataset == "nmnist" and not self.nmnist.is_dir():
            raise DataError(f"{model} needs N-MNIST, but {self.nmnist} is not a directory: "
                            f"pass --nmnist PATH or set HARNESS_NMNIST")
