"""Every error segenc raises on purpose.

    SegencError                      root: catch this to catch everything below
    +-- UsageError (ValueError)      the caller's arguments are at fault (a bad option, workers=0)
    +-- InputError (ValueError)      the input file is at fault; CLI exit 2, HTTP 415/422
    |   +-- NotAVideoError           not a media file, or no video stream in it
    |   +-- UnsupportedInputError    a container/codec we refuse (HLS playlists, ffconcat, ...)
    |   +-- CorruptInputError        truncated or undecodable data
    |   +-- LimitExceededError       resolution, fps, duration, streams or frames over a limit
    |   +-- IncompatibleError        a fine input the chosen codec cannot carry (HDR in H.264)
    +-- EncodeError                  a chunk, the audio track or the concat failed
    |   +-- IntegrityError           an output failed validation (frame count, timestamps)
    |   +-- StorageFullError         the storage ran out of space (ENOSPC) while writing a job's files
    +-- StorageError (ValueError)    a path escaped the storage root, or a file is missing
    +-- JobFailed                    a distributed job ended in failure (names the chunk)
    +-- JobCancelled                 a job was cancelled before it finished
"""

from __future__ import annotations

import errno


class SegencError(Exception):
    """Root of every error segenc raises on purpose."""


class UsageError(SegencError, ValueError):
    """The caller's arguments are at fault (an unknown rung, ``workers=0``, a bad option value); the
    message names the argument and what it takes. CLI exit 2, HTTP 400."""


class InputError(SegencError, ValueError):
    """The input file is at fault (the caller can fix it by giving another file)."""


class NotAVideoError(InputError):
    pass


class UnsupportedInputError(InputError):
    pass


class CorruptInputError(InputError):
    pass


class LimitExceededError(InputError):
    pass


class IncompatibleError(InputError):
    pass


class EncodeError(SegencError):
    pass


class IntegrityError(EncodeError):
    pass


class StorageFullError(EncodeError):
    """No space left on the storage: not the input's fault; the message names the path."""


def storage_full(exc: BaseException | None) -> StorageFullError | None:
    """A StorageFullError if ENOSPC is anywhere in ``exc``'s chain (PyAV's errors carry errno too)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, StorageFullError):
            return exc
        if getattr(exc, "errno", None) == errno.ENOSPC:
            where = getattr(exc, "filename", None)
            return StorageFullError(f"no space left on the storage ({where or exc})")
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


class StorageError(SegencError, ValueError):
    pass


class JobFailed(SegencError):
    pass


class JobCancelled(SegencError):
    pass
