"""The headline of a run: one figure and one number that say what it found.

A domain names its headline in its declaration (:attr:`Domain.headline
<matterflow.core.domain.Domain.headline>`) as one or more ``"task:output"``
references, separated by commas::

    headline="xrd.integrate:intensity, xrd.integrate:peak_ratio"

In a results file, ``task:output`` is the output ``output`` of the first step
that ran ``task`` (a later step of the same task is most often a comparison, such
as a classical baseline evaluated after the model). The first reference that is an array of one or two
dimensions is the headline *figure* (a curve or a heat map); the first that is
a number is the headline *number*. Where a domain declares none, or its
references are not in the file, a generic choice fills in: the figure is the
first numeric 1D/2D dataset of the last step that has one, the number the
first numeric scalar of the last step that has one.

:func:`find_headline` reads only what it needs (a thumbnail of at most
``n_points`` values per axis, read with strides), so it is cheap on large files.
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

__all__ = ["Headline", "find_headline", "run_domain", "thumbnail_html"]


@dataclass(frozen=True)
class Headline:
    """A run's headline: where it comes from and a small copy of it.

    ``figure`` and ``number`` are HDF5 paths (``/step/output``) or None;
    ``curve`` is a 1D array (at most ``n_points`` values) or a 2D array (a
    strided copy) of the figure; ``value`` and ``units`` belong to the number;
    ``declared`` says whether the domain's declaration chose them.
    """

    figure: str | None = None
    figure_units: str = ""
    curve: np.ndarray | None = None
    number: str | None = None
    value: float | None = None
    units: str = ""
    declared: bool = False

    @property
    def number_text(self) -> str:
        """``name = value units`` of the headline number ("" if none)."""
        if self.number is None or self.value is None:
            return ""
        units = "" if self.units in ("", "dimensionless") else f" {self.units}"
        return f"{self.number.rsplit('/', 1)[-1]} = {self.value:.4g}{units}"


def run_domain(f: h5py.File) -> str:
    """The domain of a run: the task prefix most of its steps share (non-core first)."""
    counts: dict[str, int] = {}
    for g in f.values():
        if isinstance(g, h5py.Group):
            task = _text(g.attrs.get("task", ""))
            if "." in task:
                dom = task.split(".", 1)[0]
                counts[dom] = counts.get(dom, 0) + 1
    if not counts:
        return ""
    return max(counts, key=lambda d: (d != "core", counts[d]))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _numeric(ds: Any) -> bool:
    return isinstance(ds, h5py.Dataset) and ds.dtype.kind in "fiub" and ds.dtype.names is None


def _step_of_task(f: h5py.File, task: str) -> h5py.Group | None:
    return next((g for g in f.values()
                 if isinstance(g, h5py.Group) and _text(g.attrs.get("task", "")) == task), None)


_REF = re.compile(r"^(?P<name>[^\[\]]+)(\[(?P<index>-?\d+)\])?$")


def _figure_ok(ds: Any, index: int | None = None) -> bool:
    if not _numeric(ds) or ds.size < 2:
        return False
    ndim = ds.ndim - (index is not None)
    return ndim in (1, 2) and (index is None or -ds.shape[0] <= index < ds.shape[0])


def _number_ok(ds: Any, index: int | None = None) -> bool:
    if not _numeric(ds):
        return False
    if index is None:
        return bool(ds.size == 1 and ds.ndim <= 1)
    return bool(ds.ndim == 1 and -ds.shape[0] <= index < ds.shape[0])


def _thumb(ds: h5py.Dataset, index: int | None, n_points: int) -> np.ndarray:
    shape = ds.shape if index is None else ds.shape[1:]
    steps = tuple(slice(None, None, max(1, -(-n // n_points))) for n in shape)
    data = ds[steps] if index is None else ds[(index,) + steps]
    return np.asarray(data, dtype=float)


def find_headline(f: h5py.File, declared: str | None = None, *, n_points: int = 120) -> Headline:
    """The headline of the open results file ``f`` (see the module docstring).

    An output may end in ``[i]``: row ``i`` along its first axis (one model of
    several, one temperature of a list).
    """
    fig = num = None
    fig_i = num_i = None
    from_decl = False
    for ref in (r.strip() for r in (declared or "").split(",")):
        task, _, output = ref.partition(":")
        m = _REF.match(output.strip())
        g = _step_of_task(f, task) if task and m else None
        obj = g.get(m["name"]) if g is not None and m else None
        index = int(m["index"]) if m and m["index"] is not None else None
        if fig is None and _figure_ok(obj, index):
            fig, fig_i, from_decl = obj, index, True
        elif num is None and _number_ok(obj, index):
            num, num_i, from_decl = obj, index, True
    steps = [g for g in f.values() if isinstance(g, h5py.Group)]
    for g in reversed(steps):
        if fig is not None and num is not None:
            break
        datasets: list[h5py.Dataset] = []
        g.visititems(lambda _n, o, acc=datasets: acc.append(o) if isinstance(o, h5py.Dataset) else None)
        if fig is None:
            fig = next((d for d in datasets if _figure_ok(d)), None)
        if num is None:
            num = next((d for d in datasets if _number_ok(d) and d.dtype.kind == "f"), None)
    value = None
    if num is not None:
        value = float(num[num_i] if num_i is not None else np.ravel(num[()])[0])

    def label(ds: Any, i: int | None) -> str | None:
        return None if ds is None else ds.name + ("" if i is None else f"[{i}]")

    return Headline(
        figure=label(fig, fig_i),
        figure_units=_text(fig.attrs.get("units", "")) if fig is not None else "",
        curve=_thumb(fig, fig_i, n_points) if fig is not None else None,
        number=label(num, num_i), value=value,
        units=_text(num.attrs.get("units", "")) if num is not None else "",
        declared=from_decl)


def thumbnail_html(h: Headline, *, width: int = 160, height: int = 60) -> str:
    """An inline SVG polyline (1D) or PNG heat map (2D) of the headline figure; "" if none."""
    curve = h.curve
    if curve is None or curve.size < 2:
        return ""
    title = html.escape(f"{h.figure} [{h.figure_units}]" if h.figure_units else str(h.figure))
    if curve.ndim == 1:
        y = curve[np.isfinite(curve)]
        if y.size < 2:
            return ""
        lo, hi = float(y.min()), float(y.max())
        span = hi - lo or 1.0
        xs = np.linspace(2, width - 2, curve.size)
        ys = height - 2 - (np.nan_to_num(curve, nan=lo) - lo) / span * (height - 4)
        pts = " ".join(f"{x:.1f},{yv:.1f}" for x, yv in zip(xs, ys, strict=True))
        return (f"<svg class='thumb' width='{width}' height='{height}' role='img'>"
                f"<title>{title}</title><polyline fill='none' stroke='#1f77b4' "
                f"stroke-width='1.5' points='{pts}'/></svg>")
    return (f"<img class='thumb' alt='{title}' title='{title}' "
            f"src='data:image/png;base64,{base64.b64encode(heatmap_png(curve)).decode()}' "
            f"style='width:{min(width, height * 2)}px;image-rendering:pixelated'>")


_VIRIDIS = np.array([[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
                     [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44],
                     [253, 231, 37]], dtype=float)
_LUT = np.stack([np.interp(np.linspace(0, 9, 256), np.arange(10), _VIRIDIS[:, c])
                 for c in range(3)], axis=1).astype(np.uint8)


def heatmap_png(a: np.ndarray, vmin: float | None = None, vmax: float | None = None,
                *, compress_level: int = 1) -> bytes:
    """A 2D array as PNG bytes with the viridis colour map (NaN black)."""
    from PIL import Image

    a = np.asarray(a, dtype=np.float32)
    finite = np.isfinite(a)
    if vmin is None or vmax is None:
        vals = a[finite] if not finite.all() else a
        lo = float(vals.min()) if vals.size else 0.0
        hi = float(vals.max()) if vals.size else 1.0
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    scale = 255.0 / (vmax - vmin) if vmax > vmin else 0.0
    idx = np.clip((np.nan_to_num(a, nan=vmin) - vmin) * scale, 0, 255).astype(np.uint8)
    rgb = _LUT[idx]
    rgb[~finite] = 0
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
