"""The device stage: replaying a run's sets on a hardware profile, and what is measured there.

- :mod:`.replay`: ``harness replay`` on a run directory (:func:`replay_run`: clean test split or
  one attack set -> ``RUN_DIR/device/<profile>/<id>.h5``) or on stand-alone files
  (:func:`replay_file`), and :func:`replay_summary`;
- :mod:`.measure`: agreement with SLAYER, on-device success and transfer, activity and energy
  (these need attack records, which is why they live here and not in the device backend).

The backend itself (:mod:`harness.device`) knows nothing of runs or attacks.
"""
from .measure import attack_measurements, clean_measurements, offline_outputs
from .replay import format_summary, replay_file, replay_run, replay_sets, replay_summary

__all__ = ["attack_measurements", "clean_measurements", "format_summary", "offline_outputs",
           "replay_file", "replay_run", "replay_sets", "replay_summary"]
