"""package: validated rendition files -> the output directory and manifest.json, atomically.

The stream (master.m3u8, stream.mpd, one folder per track; see segenc.stream) is already in the
output directory; the manifest lists it too.

Every file appears at its final path only when complete (temp name + ``os.replace``); the
manifest is written last, so its presence means the whole ladder is there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import layout
from .model import EncodeResult, Plan, RenditionResult
from .storage import atomic_path
from .stream import audio_tracks, published


def package(plan: Plan, out_dir: Path, facts: dict[str, dict], staged: dict[str, Path],
            timings: dict[str, float]) -> EncodeResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    rends = []
    for r in plan.renditions:
        final = out_dir / layout.output_name(r.name)
        os.replace(staged[r.name], final)
        f = facts[r.name]
        size = final.stat().st_size
        rends.append(RenditionResult(
            name=r.name, path=final.name, width=f["width"], height=f["height"], frames=f["frames"],
            duration=round(f["duration"], 6), bytes=size,
            bitrate=int(size * 8 / f["duration"]) if f["duration"] else 0,
        ))
    info = plan.info
    source = {k: getattr(info, k) for k in ("duration", "fps", "width", "height", "display_width", "display_height",
                                            "codec", "pix_fmt", "has_audio", "frames", "vfr", "rotation")}
    result = EncodeResult(
        out_dir=str(out_dir), manifest=layout.manifest(str(out_dir)), source=source, renditions=tuple(rends),
        segments=len(plan.segments), chunk_seconds=plan.settings.chunk_seconds, timings=dict(timings),
        hls=str(out_dir / layout.MASTER_PLAYLIST), dash=str(out_dir / layout.DASH_MANIFEST),
    )
    doc = result.to_dict()
    for key in ("out_dir", "manifest", "hls", "dash"):
        doc.pop(key)
    doc["stream"] = stream_files(plan, out_dir)
    doc["job_id"] = plan.job_id
    st = plan.settings
    doc["settings"] = {"preset": st.preset, "crf": st.crf, "codec": st.codec, "gop": st.gop,
                       "audio": st.audio and bool(plan.audio_parts),
                       "caps": {r.name: {"maxrate": r.maxrate, "bufsize": r.bufsize} for r in plan.renditions
                                if r.maxrate}}
    _write(Path(result.manifest), doc)
    return result


def stream_files(plan: Plan, out_dir: Path) -> dict:
    """The stream's files, relative to the output directory."""
    tracks = [r.name for r in plan.renditions] + [layout.audio_track(k) for k in range(audio_tracks(plan))]
    return {"hls": layout.MASTER_PLAYLIST, "dash": layout.DASH_MANIFEST,
            "tracks": {t: {"playlist": layout.media_playlist(t), "init": layout.stream_init(t),
                           "segments": published(out_dir, t)}
                       for t in tracks}}


def update_timings(manifest: str | os.PathLike, timings: dict[str, float]) -> None:
    """Rewrite a finished ladder's manifest with the job's final timings (atomically), so the file
    and the returned ``EncodeResult.timings`` agree."""
    doc = json.loads(Path(manifest).read_text())
    doc["timings"] = dict(timings)
    _write(Path(manifest), doc)


def _write(path: Path, doc: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
