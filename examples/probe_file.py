"""Print what segenc sees in a video file.

    python examples/probe_file.py INPUT
"""

import json
import sys

import segenc

info = segenc.probe(sys.argv[1])
print(json.dumps(info.summary(), indent=2))
print(f"{info.frames} frames, keyframes at frames {list(info.keyframes)[:10]}...")
