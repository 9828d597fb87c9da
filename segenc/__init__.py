"""segenc: segment-parallel H.264 ladder encoding.

probe -> plan -> split -> encode (N chunks, in parallel) -> concat -> package.
"""

from .errors import (CorruptInputError, EncodeError, IncompatibleError, InputError, IntegrityError, JobCancelled,
                     JobFailed, LimitExceededError, NotAVideoError, SegencError, StorageError, StorageFullError,
                     UnsupportedInputError, UsageError)
from .model import (DEFAULT_LADDER, ChunkResult, ChunkSpec, EncodeResult, MediaInfo, Plan, Rendition,
                    RenditionResult, Segment)
from .pipeline import encode
from .probe import probe
from .progress import ProgressEvent, Tracker
from .runners.base import Runner
from .runners.local import LocalRunner
from .runners.serial import SerialRunner
from .settings import Limits, Settings
from .stages import Stage
from .steps import encode_chunk, finish, prepare

__version__ = "0.1.0"

__all__ = [
    "encode", "probe", "prepare", "encode_chunk", "finish",
    "Settings", "Limits", "Runner", "LocalRunner", "SerialRunner", "Tracker", "ProgressEvent", "Stage",
    "MediaInfo", "Plan", "Segment", "Rendition", "ChunkSpec", "ChunkResult", "EncodeResult", "RenditionResult",
    "DEFAULT_LADDER",
    "SegencError", "UsageError", "InputError", "NotAVideoError", "UnsupportedInputError", "CorruptInputError",
    "LimitExceededError", "IncompatibleError", "EncodeError", "IntegrityError", "StorageError", "JobFailed",
    "StorageFullError", "JobCancelled",
]
