"""Speed and memory benchmarks of the harness, each a ratio against a baseline measured in the
same run (``make bench`` runs :mod:`benchmarks.run`; see docs/benchmarks.md)."""
