"""harness: how robust is a spiking network to spike-domain adversarial inputs, on the device?

Stages, in the order data flows (each reads the artifacts of the one before from a run
directory, see :mod:`harness.store`):

- :mod:`harness.data`     data sets -> SpikeSet (binary spikes + labels + metadata)
- :mod:`harness.models`   SLAYER networks from models/*.toml specs
- :mod:`harness.train`    training, checkpoint, netx export, model card
- :mod:`harness.attacks`  G2S / RSF spike attacks, baselines, transfer, ANN comparison
- :mod:`harness.device`   hardware profiles and Lava (Loihi 2 simulation) replay
- :mod:`harness.metrics`  prediction rule, success, L0, activity, energy
- :mod:`harness.report`   results.json, figures, HTML/Markdown report
- :mod:`harness.experiment` whole studies from experiments/*.toml
"""
__version__ = "0.1.0"


def _keep_start_method_unset() -> None:
    """Give tqdm a thread lock instead of its default multiprocessing RLock.

    Creating a multiprocessing lock fixes the process start method; importing Lava later
    then fails with "context has already been set" because Lava calls
    ``multiprocessing.set_start_method('fork')`` at import (../shared/notes/lava-replay.md).
    """
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


_keep_start_method_unset()
