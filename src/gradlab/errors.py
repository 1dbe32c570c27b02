"""The errors gradlab reports to the user: each message is the whole story in one line (what, which value, what to
do), printed as `error: <message>` with exit code 1 by the entry points."""


class ConfigError(ValueError):
    """A config value, override or command-line argument that cannot work."""


class DataError(RuntimeError):
    """A file that is missing, corrupt, or does not match the config."""


class RunFolderBusy(DataError):
    """Another live process is writing the same run folder."""


def out_of_range(key: str, value: object, rule: str) -> ConfigError:
    """The one-line error of a config value outside its range, e.g. `task.seq_len=1 is out of range: must be an
    integer >= 2`."""
    return ConfigError(f"{key}={value!r} is out of range: must be {rule}")
