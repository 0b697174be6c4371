"""Lava ``LIFReset`` models for the ``fresh`` replay: every reset restores a fresh start.

netx resets a layer ``d`` synapses deep (``reset_interval`` / ``reset_offset``) at the step a
sample's first input reaches it, setting u = v = 0. A freshly loaded network (netx's defaults:
no reset) holds something else at that step: its first ``d`` steps integrated bias, and the
spikes bias drove in the layers before. That state is the same for every sample and every lane
(no input has reached the layer yet), and the first window of a run is a fresh start. These
models remember each neuron's (u, v) at their first reset and restore it at every later reset
instead of zeroing it, so every window starts as on a freshly loaded network. With no bias the
remembered state is zero and they equal Lava's own models.

Selected for ``LIFReset`` through the run configuration's ``exception_proc_model_map``
(:func:`harness.device.lava_sim.run_config`), not by Lava's search, so they carry no decorator
of their own (they inherit the tags of the models they extend).
"""
from __future__ import annotations

from lava.proc.lif.models import PyLifResetModelBitAcc, PyLifResetModelFloat

NEVER = -1  # a reset phase no time step reaches: the models below reset by themselves


class _RestoresFreshStart:
    """Replaces the parent's zeroing reset by restoring the state held at the first reset."""

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.restore_phase, self.reset_offset = self.reset_offset, NEVER
        self.fresh_state = None

    def run_spk(self) -> None:
        if self.time_step % self.reset_interval == self.restore_phase:
            if self.fresh_state is None:  # the first window: the state of a fresh start
                self.fresh_state = (self.u.copy(), self.v.copy())
            self.u[:] = self.fresh_state[0]
            self.v[:] = self.fresh_state[1]
        super().run_spk()


class FreshStartLifFixed(_RestoresFreshStart, PyLifResetModelBitAcc):
    """``fixed_pt`` (bit-accurate Loihi) LIFReset restoring a fresh start at every reset."""


class FreshStartLifFloat(_RestoresFreshStart, PyLifResetModelFloat):
    """``floating_pt`` LIFReset restoring a fresh start at every reset."""
