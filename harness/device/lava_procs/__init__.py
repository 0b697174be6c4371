"""Custom Lava processes of the replay backend (input from a file, outputs to files), the
LIFReset models of the ``fresh`` replay (:mod:`.neurons`) and the Sparse models that add only
the spiking inputs' weight columns (:mod:`.synapse`).

They live in their own package on purpose: while looking for a Process's ProcessModels, Lava
imports every module of the package that defines it (../shared/notes/lava-replay.md), so
nothing else may sit beside them. Each process has one untagged ProcessModel, which Lava
selects under both ``fixed_pt`` and ``floating_pt``.
"""
