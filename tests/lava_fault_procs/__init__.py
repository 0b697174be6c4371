"""Lava processes that misbehave on purpose, for the watchdog tests (tests/test_device_watchdog.py).

A package of its own: Lava imports every module beside a custom Process while looking for its
ProcessModels (../shared/notes/lava-replay.md).
"""
