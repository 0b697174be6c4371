"""User-facing errors.

Every error a user can cause (bad file, bad name, missing stage) is raised as a
:class:`HarnessError` whose message names the file or option and says what is wrong.
The CLI prints the message (no traceback) and exits with status 2.
"""


class HarnessError(Exception):
    """Base class: an error caused by input, configuration or environment, not by a bug."""


class DataError(HarnessError):
    """A data file or directory is missing, malformed or inconsistent."""


class ConfigError(HarnessError):
    """A TOML spec (model, profile, experiment) or an option is invalid or unknown."""


class StageMissing(HarnessError):
    """An earlier pipeline stage has not produced the artifact this stage needs."""


class SchemaError(HarnessError):
    """An artifact was written by another (newer or unknown) schema version."""


class DeviceError(HarnessError):
    """The device backend cannot run the network or the run failed."""


class DeviceTimeout(DeviceError):
    """A device run did not finish within its watchdog timeout."""
