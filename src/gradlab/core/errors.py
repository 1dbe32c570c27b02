"""The errors gradlab reports to the user: each message is the whole story in one line (what, which value, what to
do), printed as `error: <message>` with exit code 1 by the entry points."""


import errno
import os

# A disk that cannot take what a stage writes: no space, a quota, no permission, mounted read-only. The entry points
# end these with one line (disk_error) instead of a traceback; every file is written to a temporary name and renamed
# (gradlab.core.runfolder.atomic_write_bytes), so nothing is left half-written.
DISK_ERRNOS = {errno.ENOSPC: ("no space left on device", "free space"),
               errno.EDQUOT: ("disk quota exceeded", "free space (or raise the quota)"),
               errno.EACCES: ("permission denied", "make it writable"),
               errno.EPERM: ("operation not permitted", "make it writable"),
               errno.EROFS: ("read-only file system", "write somewhere writable (or remount it read-write)")}


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


def disk_error(err: BaseException, rerun: str = "rerun", where: str | os.PathLike | None = None) -> str | None:
    """The one line of an OSError of DISK_ERRNOS (also when it is the cause or context of another error), e.g.
    `runs/x/last.ckpt: no space left on device; free space and rerun: it resumes from last.ckpt`; None for any other
    error. The path is the error's own (the destination of a failed copy), else `where` (the folder being written)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
            what, fix = DISK_ERRNOS[err.errno]
            path = err.filename2 if err.filename2 is not None else err.filename
            path = path if path is not None else where
            return f"{os.fsdecode(path) if path is not None else 'a file'}: {what}; {fix} and {rerun}"
        err = err.__cause__ or err.__context__
    return None
