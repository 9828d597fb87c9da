"""A job's stages, in order. The one owner of their names (the page gets them from the service).

A job moves queued -> probing -> splitting -> encoding -> concatenating -> done; it may end
``failed`` or ``cancelled`` from any stage. Terminal stages are sticky.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    QUEUED = "queued"
    PROBING = "probing"
    SPLITTING = "splitting"
    ENCODING = "encoding"
    CONCATENATING = "concatenating"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Stage.DONE, Stage.FAILED, Stage.CANCELLED})
STOPPED = frozenset({Stage.FAILED, Stage.CANCELLED})  # ended without output: work still running stops


def is_terminal(stage: str | None) -> bool:
    return stage in TERMINAL


def is_stopped(stage: str | None) -> bool:
    return stage in STOPPED
