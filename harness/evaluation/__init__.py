"""Robust accuracy: one verdict from an ensemble of attacks, offline and on device profiles.

- :mod:`.ensemble`: ensembles (TOML files naming registered attacks and their settings);
- :mod:`.verdicts`: one judge's per-row verdict (smallest misclassified example per row);
- :mod:`.cascade`: the attacks in cascade order, every example judged by every judge, the flags;
- :mod:`.evaluate`: ``harness evaluate`` (writes ``RUN_DIR/evaluations/<id>.h5``);
- :mod:`.record`: reading an evaluation (curves with Wilson intervals, the rising-curve check).

The definition, the cascade, the budgets and the flags: docs/evaluation.md.
"""
