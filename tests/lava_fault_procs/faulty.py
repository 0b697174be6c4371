"""``Stall`` blocks forever inside a time step; ``Tick`` takes ``seconds`` per time step."""
import time

from lava.magma.core.decorator import implements, requires
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class Stall(AbstractProcess):
    """A process whose first time step never returns."""


@implements(proc=Stall, protocol=LoihiProtocol)
@requires(CPU)
class PyStallModel(PyLoihiProcessModel):
    def run_spk(self) -> None:
        while True:
            time.sleep(1)


class Tick(AbstractProcess):
    """A process that sleeps ``seconds`` in every time step."""

    def __init__(self, *, seconds: float) -> None:
        super().__init__(seconds=seconds)


@implements(proc=Tick, protocol=LoihiProtocol)
@requires(CPU)
class PyTickModel(PyLoihiProcessModel):
    def run_spk(self) -> None:
        time.sleep(self.proc_params["seconds"])
