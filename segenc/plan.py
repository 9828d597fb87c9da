"""plan: MediaInfo x ladder x settings -> Plan. Pure: no I/O.

Segments are cut at keyframes when one lies near the target length; when keyframes are far
apart (a 60 s GOP) a segment is cut between keyframes and decodes from the previous keyframe,
so every worker still gets work. Renditions above the source's short side are dropped.
"""

from __future__ import annotations

import bisect
import math
from fractions import Fraction

from . import layout
from .codecs import PREROLL_DECODED, PREROLL_SKIPS, check_source, chunk_format
from .model import ChunkSpec, MediaInfo, Plan, Rendition, Segment, Task, makespan, parse_ladder, task_cost, task_id
from .settings import Settings

# A keyframe within this share of the target length from the ideal cut is preferred over a
# mid-GOP cut, which costs decoding from the previous keyframe (Settings.keyframe_cuts).
KEYFRAME_SLACK = 0.25
# Audio cost per second of audio, in the video tasks' units (output pixel-frames). Measured:
# 60 s of stereo AAC took 3.26 s, about 0.28 of a 10 s 1080p segment task (~1.15e9 units).
AUDIO_COST_PER_SECOND = 5.4e6
# What an audio task spends before its first part (the seek margin and lead-in decoded and
# encoded, see segenc.audio), in seconds of audio: shared by the parts of one task.
AUDIO_LEAD_SECONDS = 0.45
# Copying the source's AAC instead (Settings.audio_copy): 0.5 ms per second of audio against 37-55
# ms to decode and encode it; and a bit rate this share over the job's still counts as within it.
AUDIO_COPY_SPEEDUP = 70.0
AUDIO_COPY_SLACK = 0.02
# Decoding a source pixel costs this share of encoding an output pixel (x264 veryfast). Measured on
# one 10 s 1080p segment: three renditions from one decode 11.59 CPU-s, each decoding it 14.16.
DECODE_COST = 0.2
# On a busier source the decoder's work follows the bits it reads more steeply than x264's follows
# the content: (bits per pixel / COMPLEXITY_REF_BPP) ** DECODE_EXPONENT times DECODE_COST, at
# least 1x and at most DECODE_MAX. Measured 2026-12-06, single-threaded, 720p30 H.264: a clean
# 0.16 bits/pixel source decoded at 1.83 ns per pixel against x264's 9.25 ns per output pixel
# (0.20), a grainy 3.0 bits/pixel one at 22.8 against 33.1 ns (0.69).
DECODE_EXPONENT = math.log((22.8 / 33.1) / (1.83 / 9.25)) / math.log(3.0 / 0.16)
DECODE_MAX = 5.0
# Automatic chunk length (Settings.chunk_seconds=None): among lengths from AUTO_CHUNK_MAX down to
# AUTO_CHUNK_MIN in AUTO_CHUNK_STEP steps, the longest whose predicted schedule on the expected
# workers is within AUTO_CHUNK_TOLERANCE of the shortest. Longer chunks cost less (an IDR, decoder
# and encoder start-up per task: TASK_OVERHEAD, in cost units); shorter ones balance the last
# round. See benchmarks/results/sweep-clean.md for the evidence.
AUTO_CHUNK_MAX = 10.0
AUTO_CHUNK_MIN = 2.0
AUTO_CHUNK_STEP = 0.5
AUTO_CHUNK_TOLERANCE = 0.01
# Exact cuts (Settings.keyframe_cuts False) are then placed in finer steps, where that shortens the
# predicted schedule by more than AUTO_CHUNK_FINE_GAIN.
AUTO_CHUNK_FINE = 0.1
AUTO_CHUNK_FINE_GAIN = 0.002
TASK_OVERHEAD = 1.3e7  # 0.13 s of a core: the first fit of `python -m benchmarks projection`
# (later refits put it near 0); kept as a bias towards fewer chunks, each of which costs an IDR.
# The video's cost units are output pixel-frames, but what a pixel costs x264 grows with the
# content's complexity, which the source's bit rate shows; the audio parts' and the per-task
# overhead's cost do not. So both are weighed against the video divided by ``complexity``:
# (source bits per pixel / COMPLEXITY_REF_BPP) ** COMPLEXITY_EXPONENT, at least 1. Measured
# (x264 veryfast, 2026-12-03): a grainy 3.0 bits/pixel source took 61.8 s per 1e9 units, a clean
# 0.14 bits/pixel one 11.6 s (5.3x); on the grainy 10 s 720p clip the plan it leads to (4 s
# chunks, not 6.5 s) ran at 0.90x the ffmpeg CLI instead of 0.77x.
COMPLEXITY_REF_BPP = 0.14
COMPLEXITY_EXPONENT = math.log(61.8 / 11.6) / math.log(3.0 / 0.14)
COMPLEXITY_MAX = 8.0
# With this many full rounds at AUTO_CHUNK_MAX the last round's imbalance is noise: no search.
AUTO_CHUNK_ROUNDS = 20
# Size: every chunk starts with an IDR. Where a cut falls on the output's own GOP grid
# (Settings.gop) that IDR is there anyway; elsewhere it costs about IDR_COST_SECONDS of bits
# (measured with x264 veryfast CRF 23 and independent chunks, long source GOP: 2 s chunks +7-8%
# bytes, 4 s +2-3%, 10 s within 0.7%). An automatic chunk length never goes below the length
# whose extra IDRs would cost more than SIZE_TARGET (the size budget against one-stream encodes).
IDR_COST_SECONDS = 0.2
SIZE_TARGET = 0.02
# Containers whose segments tasks read straight from the source (see ``direct_readable``).
DIRECT_CONTAINERS = ("mov", "mp4", "matroska", "webm")


def renditions(info: MediaInfo, ladder: tuple[str, ...] | list[str]) -> tuple[Rendition, ...]:
    """The rungs to produce: never upscaled, width from the display aspect ratio, even sizes.

    Rungs above the source's short side are skipped; a source below every rung gets one rendition
    at its own size, named by that size (a 320x240 source asked for 480p gives "240p"), with the
    lowest rung's rate cap."""
    rungs = parse_ladder(tuple(ladder))
    dw, dh = info.width * Fraction(info.sar.replace(":", "/")), Fraction(info.height)  # exact display size
    if info.rotation in (90, 270):
        dw, dh = dh, dw
    short, long_ = min(dw, dh), max(dw, dh)
    kept = [(r.name, r.height, r) for r in rungs if r.height <= short]
    if not kept:
        own = max(2, 2 * int(short / 2))  # even, never above the source
        kept = [(f"{own}p", own, rungs[0])]
    out = []
    for name, height, rung in kept:
        l = _even(height * long_ / short)
        s = _even(height)
        w, h = (l, s) if dw >= dh else (s, l)
        out.append(Rendition(name, w, h, rung.maxrate, rung.bufsize))
    return tuple(out)


def _even(x) -> int:
    return max(2, 2 * int(Fraction(x) / 2 + Fraction(1, 2)))  # nearest even, halves up


def size_penalty(info: MediaInfo, segments, gop: float) -> float:
    """Predicted extra bytes (a share) of these segments against one-stream encodes with an IDR
    every ``gop`` seconds: IDR_COST_SECONDS for every segment that starts off that grid."""
    tb, step = info.tb, Fraction(gop).limit_denominator(1000)
    pts = info.frame_pts
    off = 0
    for seg in segments[1:]:
        i = seg.first_frame
        if math.floor(pts[i] * tb / step) == math.floor(pts[i - 1] * tb / step):
            off += 1  # the grid has no IDR here: this cut adds one
    return IDR_COST_SECONDS * off / max(info.duration, 1e-9)


def _busier(info: MediaInfo, exponent: float, top: float) -> float:
    """(bits per pixel / COMPLEXITY_REF_BPP) ** exponent, from 1 to ``top``: the bits per pixel are
    the source's size over its duration and frames (audio included); 1 when the size is unknown."""
    pixels = info.duration * info.width * info.height * info.fps
    if not info.size or pixels <= 0:
        return 1.0
    bpp = info.size * 8 / pixels
    return min(top, max(1.0, (bpp / COMPLEXITY_REF_BPP) ** exponent))


def complexity(info: MediaInfo) -> float:
    """How much dearer than clean content a pixel of this source is to encode (1 .. COMPLEXITY_MAX)."""
    return _busier(info, COMPLEXITY_EXPONENT, COMPLEXITY_MAX)


def decode_weight(info: MediaInfo) -> float:
    """What decoding one source pixel costs, in the video's cost units (encoded output pixels)."""
    return DECODE_COST * _busier(info, DECODE_EXPONENT, DECODE_MAX)


def task_overhead(info: MediaInfo) -> float:
    """TASK_OVERHEAD in this source's cost units (see ``complexity``)."""
    return TASK_OVERHEAD / complexity(info)


def auto_chunking(info: MediaInfo, ladder, settings: Settings, workers: int | None,
                  source: str | None = None) -> tuple[float, bool]:
    """The chunk length and cut rule (``Settings.keyframe_cuts``) for ``workers`` parallel
    single-core workers (unknown or one: the longest length, cut at keyframes).

    For each cut rule, the fastest predicted schedule wins, among lengths from AUTO_CHUNK_MAX down
    to AUTO_CHUNK_MIN whose cuts keep the size within SIZE_TARGET (size_penalty: a floor set by the
    GOP); among those within AUTO_CHUNK_TOLERANCE of it, the one whose video tasks alone finish
    first (when the single audio task is the longest thing in the job every length ties on the
    whole schedule, and the video should still keep every other worker busy), then the longest
    (fewest IDRs). With ``keyframe_cuts`` None both rules are tried, and exact cuts (decoding from
    the keyframe before) win only when their schedule is shorter by more than the tolerance; their
    length is then refined in AUTO_CHUNK_FINE steps. ``source``: as for ``plan`` (tasks that read
    the source copy its AAC: the audio then fills no gap)."""
    snap = settings.keyframe_cuts is not False
    if not workers or workers < 2 or info.duration >= AUTO_CHUNK_MAX * workers * AUTO_CHUNK_ROUNDS:
        return AUTO_CHUNK_MAX, snap
    rules = (True, False) if settings.keyframe_cuts is None else (snap,)
    spans: dict[tuple[bool, float], tuple[float, ...]] = {}
    overhead = task_overhead(info)
    # Lengths whose cuts land on the same frames plan the same job (a plan depends on its cuts
    # only): plan each layout once (10 min with 2 s keyframes: 6 layouts for 17 lengths).
    layouts: dict[tuple[int, ...], tuple[float, tuple[float, float]]] = {}

    def layout(length: float, keyframes: bool) -> tuple[float, tuple[float, float]]:
        cuts = tuple(cut_points(info, length, keyframes))
        if cuts not in layouts:
            p = plan(info, ladder, settings.with_(chunk_seconds=length, keyframe_cuts=keyframes), job_id="",
                     workdir="", workers=workers, source=source)
            # The overhead is a video task's (decoder and encoder start-up, an IDR): an audio
            # task's own lead-in is in its cost, and a copy of the source's AAC takes ms.
            layouts[cuts] = (size_penalty(info, p.segments, settings.gop),
                             schedule_key([task_cost(g) + (overhead if g[0].kind == "video" else 0.0)
                                           for g in p.groups()], workers))
        return layouts[cuts]

    length = AUTO_CHUNK_MAX
    while length >= AUTO_CHUNK_MIN - 1e-9:
        for keyframes in rules:
            penalty, key = layout(length, keyframes)
            if spans and penalty > SIZE_TARGET + 1e-12:
                continue  # too many extra IDRs: the size budget sets the floor (one IDR in 10 s meets it)
            spans[(keyframes, length)] = key
        length = round(length - AUTO_CHUNK_STEP, 3)

    def choose(cands: dict[tuple[bool, float], tuple[float, ...]]) -> tuple[bool, float]:
        near = dict(cands)
        for level in range(2):  # the whole schedule, then the rest beside the longest task
            best = min(k[level] for k in near.values())
            near = {c: k for c, k in near.items() if k[level] <= best * (1 + AUTO_CHUNK_TOLERANCE)}
        return max(near)  # the longest

    picks = [choose(c) for c in ({k: v for k, v in spans.items() if k[0] is r} for r in (True, False)) if c]
    keyframes, length = picks[0]
    if len(picks) == 2 and spans[picks[1]][0] < spans[picks[0]][0] * (1 - AUTO_CHUNK_TOLERANCE):
        keyframes, length = picks[1]  # exact cuts, by more than the tolerance
    if not keyframes:
        # Exact cuts can land on any frame: on a short job the coarse steps leave the pre-roll's
        # segment longer than the others (a 10 s grainy clip balances at 5.1 s, not 5.0 s).
        # The lengths around it in AUTO_CHUNK_FINE steps, for a schedule shorter still.
        center, best_key = length, spans[(False, length)]
        for i in range(1, round(AUTO_CHUNK_STEP / AUTO_CHUNK_FINE)):
            for fine in (round(center - i * AUTO_CHUNK_FINE, 3), round(center + i * AUTO_CHUNK_FINE, 3)):
                if not AUTO_CHUNK_MIN <= fine <= AUTO_CHUNK_MAX:
                    continue
                penalty, key = layout(fine, False)
                if penalty <= SIZE_TARGET + 1e-12 and key[0] < best_key[0] * (1 - AUTO_CHUNK_FINE_GAIN):
                    length, best_key = fine, key
    return length, keyframes


def schedule_key(costs: list[float], workers: int) -> tuple[float, float]:
    """How good a schedule is: (its makespan on ``workers``, the makespan of every task but the
    longest on the other workers). The second breaks ties when one task (the audio track) is
    the longest thing in the job: the rest should still keep every other worker busy."""
    rest = sorted(costs, reverse=True)[1:]
    return makespan(costs, workers), makespan(rest, max(1, workers - 1)) if rest else 0.0


def cut_points(info: MediaInfo, chunk_seconds: float, keyframes: bool = True) -> list[int]:
    """Frame indices where segments start (the first is 0); ``keyframes``: a cut moves to a source
    keyframe within KEYFRAME_SLACK of the ideal one (False: only one exactly there).

    Worked in the stream's own timestamps (every time divided by the time base: the same
    comparisons, without a Fraction per frame for every candidate length the planner tries)."""
    pts = info.frame_pts
    keys = info.keyframes
    key_pts = [pts[k] for k in keys]
    target = Fraction(chunk_seconds).limit_denominator(1000) / info.tb
    end = Fraction(info.duration).limit_denominator(1_000_000) / info.tb
    slack = target * Fraction(KEYFRAME_SLACK) if keyframes else 0
    cuts = [0]
    while True:
        ideal = pts[cuts[-1]] + target
        if end - ideal < target / 2:  # the rest is short: it stays in this segment
            break
        lo = bisect.bisect_left(key_pts, ideal - slack)
        hi = bisect.bisect_right(key_pts, ideal + slack)
        near = [k for k in keys[lo:hi] if k > cuts[-1]]
        if near:
            cut = min(near, key=lambda k: abs(pts[k] - ideal))
        else:
            i = bisect.bisect_left(pts, ideal)
            cut = i if i < len(pts) and (i == 0 or pts[i] - ideal < ideal - pts[i - 1]) else i - 1
        if cut <= cuts[-1] or cut >= len(pts):
            break
        cuts.append(cut)
    return cuts


def lead_cut(info: MediaInfo, cuts: list[int], lead_seconds: float | None) -> list[int]:
    """``cuts`` with a short first segment: a cut at the first keyframe at or after
    ``lead_seconds`` that falls before the second cut (keyframes only: no pre-roll)."""
    if not lead_seconds:
        return cuts
    tb = info.tb
    limit = info.frame_pts[cuts[1]] * tb if len(cuts) > 1 else Fraction(info.duration).limit_denominator(1_000_000)
    lead = Fraction(lead_seconds).limit_denominator(1000)
    for k in info.keyframes:
        t = info.frame_pts[k] * tb
        if k > 0 and t >= lead - Fraction(1, 1000):
            return [0, k] + cuts[1:] if t < limit - lead / 2 else cuts
    return cuts


def plan(info: MediaInfo, ladder, settings: Settings, *, job_id: str, workdir: str,
         workers: int | None = None, source: str | None = None) -> Plan:
    """Decide every segment and chunk of a job. ``workdir`` is root-relative; ``workers`` (the
    parallel encoder processes expected) sizes an automatic chunk length. ``source``: the
    source's root-relative path when every worker can read it; a container that seeks by its
    index then needs no split (each task reads its own segment from it)."""
    check_source(info, settings)
    source = source if source and direct_readable(info) else None
    if settings.chunk_seconds is None:
        length, keyframes = auto_chunking(info, ladder, settings, workers, source)
        settings = settings.with_(chunk_seconds=length, keyframe_cuts=keyframes)
    elif settings.keyframe_cuts is None:
        settings = settings.with_(keyframe_cuts=True)
    rends = renditions(info, tuple(ladder))
    cuts = lead_cut(info, cut_points(info, settings.chunk_seconds, settings.keyframe_cuts), settings.lead_seconds)
    ends = cuts[1:] + [info.frames]
    segments = []
    for i, (a, b) in enumerate(zip(cuts, ends)):
        key = info.keyframes[bisect.bisect_right(info.keyframes, a) - 1]
        segments.append(Segment(i, a, b, key, layout.segment(workdir, i)))
    chunks = []
    decode = decode_weight(info)
    for seg in segments:
        pts = info.frame_pts[seg.first_frame:seg.end_frame]
        decoded = seg.end_frame - seg.key_frame  # pre-roll frames are decoded but not encoded
        if info.codec in PREROLL_SKIPS:  # ... only the ones later frames refer to
            decoded -= (seg.first_frame - seg.key_frame) * (1 - PREROLL_DECODED)
        for r in rends:
            chunks.append(ChunkSpec(
                job_id=job_id,
                chunk_id=f"s{seg.index:04d}-{r.name}",
                kind="video",
                source=source or seg.path,
                output=layout.chunk(workdir, r.name, seg.index, chunk_format(settings.codec)),
                settings=settings,
                rendition=r,
                segment=seg.index,
                time_base=info.time_base,
                key_pts=info.frame_pts[seg.key_frame],
                frame_pts=tuple(pts),
                rotation=info.rotation,
                duration=float((_end_pts(info, seg) - pts[0]) * info.tb),
                # x264 time grows with output pixels; decode/scale with source pixels.
                cost=seg.frames * r.width * r.height + decode * decoded * info.width * info.height,
                decode_cost=decode * decoded * info.width * info.height,
                preroll=seg.first_frame - seg.key_frame,
                frame_rate=info.frame_rate,
                direct=source is not None,
                origin=info.start_pts,
                end_pts=info.frame_pts[seg.end_frame] if seg.end_frame < info.frames else -1,
            ))
    parts = audio_parts(info, settings, segments, job_id, workdir, source) if info.has_audio and settings.audio else []
    groups = group_tasks(chunks, parts, settings.granularity, workers, split_first=bool(settings.lead_seconds))
    return Plan(
        job_id=job_id, info=info, settings=settings, renditions=rends, segments=tuple(segments),
        chunks=tuple(chunks), workdir=workdir,
        audio_source=layout.audio_source(workdir) if parts and source is None else None,
        tasks=tuple(Task(task_id(g), tuple(c.chunk_id for c in g), task_cost(g)) for g in groups),
        workers=workers,
        subtitles_source=layout.subtitles_source(workdir) if info.subtitle_languages else None,
        audio_parts=tuple(parts),
        source=source,
    )


def direct_readable(info: MediaInfo) -> bool:
    """Whether tasks can read their segments straight from the source: a container whose demuxer
    seeks exactly by its index (MP4/MOV sample tables, Matroska cues)."""
    return bool(set(info.container.split(",")) & set(DIRECT_CONTAINERS))


def audio_parts(info: MediaInfo, settings: Settings, segments, job_id: str, workdir: str,
                source: str | None = None) -> list[ChunkSpec]:
    """The audio, one part per segment, each spanning its segment's time (see segenc.audio)."""
    tb = info.tb
    starts = [info.frame_pts[s.first_frame] * tb for s in segments]
    ends = [str(t) for t in starts[1:]] + [""]
    end_time = Fraction(info.duration).limit_denominator(1_000_000)
    tracks = max(1, len(info.audio_languages))
    copy = copies_audio(info, settings, source)
    rate = AUDIO_COST_PER_SECOND * tracks / complexity(info) / (AUDIO_COPY_SPEEDUP if copy else 1)
    lead = 0.0 if copy else AUDIO_LEAD_SECONDS
    parts = []
    for i, (a, b) in enumerate(zip(starts, ends)):
        seconds = float((Fraction(b) if b else end_time) - a)
        parts.append(ChunkSpec(
            job_id=job_id, chunk_id=f"a{i:04d}", kind="audio", source=source or layout.audio_source(workdir),
            direct=source is not None, time_base=info.time_base, origin=info.start_pts, copy=copy,
            output=layout.audio_part(workdir, i), settings=settings, segment=i, span=(str(a), b),
            duration=seconds, cost=(seconds + lead) * rate, decode_cost=lead * rate,
        ))
    return parts


def copies_audio(info: MediaInfo, settings: Settings, source: str | None) -> bool:
    """Whether the audio parts copy the source's AAC: it already is what segenc would encode
    (``MediaInfo.audio_copy_bitrate``) at no more than the job's audio bit rate (AUDIO_COPY_SLACK
    over it: an encoder asked for 128k writes 128.4k), and the parts read the source itself."""
    return bool(source and settings.audio_copy and info.audio_copy_bitrate
                and info.audio_copy_bitrate <= settings.audio_bitrate * (1 + AUDIO_COPY_SLACK))


def audio_runs(parts: list[ChunkSpec], video: list[tuple[ChunkSpec, ...]]) -> list[tuple[ChunkSpec, ...]]:
    """The audio parts as tasks of consecutive parts: part 0 alone (the stream's first audio
    segment, dispatched first), the rest in runs costing no more than the cheapest video task, so
    the audio never makes the longest task and fills the gaps at the end (``_balance_tail`` splits
    runs further where that shortens the schedule)."""
    if not parts:
        return []
    budget = min((task_cost(g) for g in video), default=math.inf)
    runs: list[list[ChunkSpec]] = [[parts[0]]]
    for p in parts[1:]:
        if len(runs) > 1 and task_cost(runs[-1] + [p]) <= budget:
            runs[-1].append(p)
        else:
            runs.append([p])
    return [tuple(r) for r in runs]


def group_tasks(chunks, parts: list[ChunkSpec], granularity: str,
                workers: int | None = None, split_first: bool = False) -> list[tuple[ChunkSpec, ...]]:
    """The chord header: groups of chunks run as one task, most expensive first.

    With ``granularity="segment"`` a task decodes its segment once and encodes every rendition;
    with ``"rendition"`` each segment x rendition is its own task (finer, for many workers). Given
    ``workers``, tasks at the tail of the schedule are split per rendition where that shortens it
    (see ``_balance_tail``). The audio parts go in runs of their own (``audio_runs``).
    ``split_first`` (a lead segment, with several workers): segment 0 is one task per rendition, so
    its renditions encode in parallel and the stream can start sooner."""
    groups: dict[object, list[ChunkSpec]] = {}
    for c in chunks:
        alone = granularity != "segment" or (split_first and c.segment == 0 and (workers or 1) > 1)
        groups.setdefault(c.chunk_id if alone else c.segment, []).append(c)
    video = [tuple(g) for g in groups.values()]
    tasks = video + audio_runs(parts, video)
    if workers and workers > 1:
        tasks = _balance_tail(tasks, workers)
    return sorted(tasks, key=lambda g: -task_cost(g))


TAIL_EXACT = 16  # up to this many candidate tasks, every k is tried


def _balance_tail(tasks: list[tuple[ChunkSpec, ...]], workers: int) -> list[tuple[ChunkSpec, ...]]:
    """Split multi-rendition tasks at the end of the schedule while that shortens it.

    Longest-first scheduling of equal segment tasks leaves workers idle in the last round (5
    segments on 2 workers; 6 segments plus the audio track). Splitting a segment's task into one
    task per rendition costs an extra decode each, but fills those gaps. Candidates are the
    cheapest ``workers`` tasks (the rest run in full rounds anyway); splitting the k cheapest
    together is tried for every k, since one gap may need several splits to close. With fewer
    tasks than workers a split that lengthens nothing is taken too (on many
    workers, k in steps of about 1/8 of the candidates, and all of them: per-rendition tasks
    when the workers outnumber the segments)."""
    cost = {id(t): task_cost(t) for t in tasks}
    tasks = sorted(tasks, key=lambda t: -cost[id(t)])
    candidates = [t for t in reversed(tasks) if len(t) > 1][:workers]
    pieces = {id(g): [task_cost((c,)) for c in g] for g in candidates}  # a split task's parts: one chunk each
    best, best_span = tasks, schedule_key(list(cost.values()), workers)
    n = len(candidates)
    ks = range(1, n + 1) if n <= TAIL_EXACT else sorted({*range(1, TAIL_EXACT + 1), *range(n, 0, -max(1, n // 8))})
    for k in ks:
        split = set(map(id, candidates[:k]))
        span = schedule_key([cost[id(t)] for t in tasks if id(t) not in split]
                            + [c for g in candidates[:k] for c in pieces[id(g)]], workers)
        shorter = span[0] < best_span[0] * 0.995 or (span[0] <= best_span[0] and span[1] < best_span[1] * 0.995)
        # Fewer tasks than workers: splitting is free where it lengthens nothing (idle workers do
        # the extra decodes), and more, smaller tasks at the end leave less to wait for.
        fills = len(best) < workers and span[0] <= best_span[0] * 1.0001 and span[1] <= best_span[1] * 1.0001
        if shorter or fills:
            best = [t for t in tasks if id(t) not in split] + [(c,) for g in candidates[:k] for c in g]
            best_span = span
    return best


def _end_pts(info: MediaInfo, seg: Segment) -> int:
    if seg.end_frame < info.frames:
        return info.frame_pts[seg.end_frame]
    return round(Fraction(info.duration).limit_denominator(1_000_000) / info.tb)
