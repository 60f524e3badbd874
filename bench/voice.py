"""What checking a voice message costs the hub: decoding it to the end, rewriting its
container and drawing its waveform (hub/audio.py), per recording length and format.

    .venv/bin/python bench/voice.py           # a table
    .venv/bin/python bench/voice.py --json    # {"rows": [{container, seconds, bytes, ms}]}

The recordings are made on the spot (tests/audio_samples.py: mono, Opus at the encoder's
default rate, AAC for Safari's MP4). Each is validated `--repeat` times; the best time is
kept (the machine is shared). The peer to compare with is the image check of the same
upload path: `validate_and_resize_image` on a 2 MP photo, measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def best_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, nargs="+", default=[10, 60, 120])
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
    import django

    django.setup()
    from PIL import Image

    from hub.audio import voice_validate
    from hub.images import validate_and_resize_image
    from tests.audio_samples import voice_bytes

    rows = []
    for container in ("webm", "mp4"):
        for seconds in args.seconds:
            data = voice_bytes(seconds, container=container)
            ms = best_ms(lambda d=data: voice_validate(d, max_bytes=8_000_000, max_seconds=130), args.repeat)
            rows.append({"kind": f"voice {container}", "seconds": seconds, "bytes": len(data), "ms": round(ms, 1)})
    photo = io.BytesIO()
    Image.radial_gradient("L").resize((1600, 1200)).convert("RGB").save(photo, "JPEG", quality=90)
    ms = best_ms(
        lambda: validate_and_resize_image(photo.getvalue(), max_bytes=8_000_000, max_pixels=24_000_000, max_side=2560),
        args.repeat,
    )
    rows.append({"kind": "image jpeg 1600x1200", "seconds": 0, "bytes": len(photo.getvalue()), "ms": round(ms, 1)})
    if args.json:
        print(json.dumps({"rows": rows, "load_average": os.getloadavg()[0]}))
        return
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'upload':<22}{'seconds':>8}{'bytes':>10}{'ms':>9}")
    for r in rows:
        print(f"{r['kind']:<22}{r['seconds']:>8}{r['bytes']:>10}{r['ms']:>9}")


if __name__ == "__main__":
    main()
