"""Export of processed results: NeXus NXazint1d/NXazint2d, ``.xy`` patterns, CSV fit tables.

:func:`export_nexus` reads the ``xrd.process`` step of a results file and
writes a NeXus file with

- ``/entry`` (``NXentry``, ``definition = "NXazint1d"``):
  ``instrument/monochromator`` (wavelength, energy), ``reduction``
  (``NXprocess``: program, version, date, the PONI geometry and the full
  workflow text as provenance, the plugin chain), ``data`` (``NXdata``,
  ``signal = I``, ``axes = [".", "radial"]``, ``I``, ``I_errors``,
  ``radial``, ``frame_index``, ``status``), and one ``NXcollection`` per fit
  plugin holding the per-frame fit table (center, fwhm, area, their errors);
- ``/entry_2d`` (``definition = "NXazint2d"``) per ``integrate2d`` plugin,
  ``I`` of shape (frames, azimuth, radial) with ``azimuthal``/``radial`` axes.

The layout follows the NXazint1d/NXazint2d application definitions'
structure; it has not been run through a NeXus validator.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from matterflow.core.errors import InputError
from matterflow.core.store import atomic_h5, now_iso

PATTERN_OK = (0, 3)  # statuses whose pattern is good (pipeline.PATTERN_OK; light import here)

__all__ = ["export_nexus", "export_xy", "export_fit_csv", "find_process_step", "find_geometry"]


def find_process_step(f: h5py.File) -> str:
    for name, g in f.items():
        if isinstance(g, h5py.Group) and g.attrs.get("task") == "xrd.process":
            return name
    raise InputError(f"{f.filename}: no xrd.process step; steps: {', '.join(f)}")


def _unit(ds: h5py.Dataset) -> str:
    u = ds.attrs.get("units", "")
    return u.decode() if isinstance(u, bytes) else str(u)


def export_nexus(results: str | Path, out: str | Path, *, geometry_text: str = "") -> Path:
    """Write ``out`` (NeXus, see the module docstring) from ``results`` (results.h5)."""
    results, out = Path(results), Path(out)
    with h5py.File(results, "r") as f:
        step = find_process_step(f)
        g = f[step]
        params = json.loads(g.attrs.get("params", "{}"))
        wf_text = f.attrs.get("workflow_text", "")
        with atomic_h5(out) as nx:
            nx.attrs["NX_class"] = "NXroot"
            nx.attrs["creator"] = "matterflow"
            nx.attrs["file_time"] = now_iso()
            e = nx.create_group("entry")
            e.attrs["NX_class"] = "NXentry"
            e.attrs["default"] = "data"
            e["definition"] = "NXazint1d"
            e["title"] = f"azimuthal integration ({step})"
            red = e.create_group("reduction")
            red.attrs["NX_class"] = "NXprocess"
            from matterflow import __version__

            red["program"] = "matterflow (pyFAI)"
            red["version"] = __version__
            red["date"] = now_iso()
            red["workflow"] = str(wf_text)
            red["plugins"] = json.dumps(params.get("plugins", []))
            if geometry_text:
                red["geometry_poni"] = geometry_text
                _write_instrument(e, geometry_text)
            d = e.create_group("data")
            d.attrs["NX_class"] = "NXdata"
            d.attrs["signal"] = "I"
            d.attrs["axes"] = [".", "radial"]
            ok = np.isin(np.asarray(g["status"][()]), PATTERN_OK)
            radial = g["radial"][()]
            r0 = radial[np.argmax(ok)] if ok.any() else radial[0]
            d.create_dataset("I", data=g["intensity"][()], compression="gzip", chunks=True)
            d["I"].attrs["units"] = _unit(g["intensity"])
            d.create_dataset("I_errors", data=g["sigma"][()], compression="gzip", chunks=True)
            d["I_errors"].attrs["units"] = _unit(g["sigma"])
            d["radial"] = r0
            d["radial"].attrs["units"] = _unit(g["radial"])
            d["frame_index"] = g["frame_index"][()]
            if "source_frame" in g:
                d["source_frame"] = g["source_frame"][()]
            d["status"] = g["status"][()]
            d["reason"] = g["reason"][()]
            n2d = 0
            for name, sub in g.items():
                if not isinstance(sub, h5py.Group):
                    continue
                if "center" in sub:
                    c = e.create_group(name)
                    c.attrs["NX_class"] = "NXcollection"
                    for k, ds in sub.items():
                        c[k] = ds[()]
                        c[k].attrs["units"] = _unit(ds)
                elif "azimuthal" in sub and sub["intensity"].ndim == 3:
                    n2d += 1
                    e2 = nx.create_group("entry_2d" if n2d == 1 else f"entry_2d_{n2d}")
                    e2.attrs["NX_class"] = "NXentry"
                    e2["definition"] = "NXazint2d"
                    e2["title"] = f"cake ({name})"
                    d2 = e2.create_group("data")
                    d2.attrs["NX_class"] = "NXdata"
                    d2.attrs["signal"] = "I"
                    d2.attrs["axes"] = [".", "azimuthal", "radial"]
                    d2.create_dataset("I", data=sub["intensity"][()], compression="gzip",
                                      chunks=True)
                    d2["I"].attrs["units"] = _unit(sub["intensity"])
                    k = int(np.argmax(ok)) if ok.any() else 0
                    d2["azimuthal"] = sub["azimuthal"][k]
                    d2["azimuthal"].attrs["units"] = "deg"
                    d2["radial"] = sub["radial"][k]
                    d2["radial"].attrs["units"] = _unit(sub["radial"])
                    e2["reduction"] = h5py.SoftLink("/entry/reduction")
    return out


def _write_instrument(e: h5py.Group, poni: str) -> None:
    from matterflow.diffraction.xrd._geometry import HC_KEV_A, load_geometry

    ai = load_geometry(poni)
    ins = e.create_group("instrument")
    ins.attrs["NX_class"] = "NXinstrument"
    mono = ins.create_group("monochromator")
    mono.attrs["NX_class"] = "NXmonochromator"
    mono["wavelength"] = ai.wavelength * 1e10
    mono["wavelength"].attrs["units"] = "angstrom"
    mono["energy"] = HC_KEV_A / (ai.wavelength * 1e10)
    mono["energy"].attrs["units"] = "keV"
    det = ins.create_group("detector")
    det.attrs["NX_class"] = "NXdetector"
    det["distance"] = ai.dist * 1e3
    det["distance"].attrs["units"] = "mm"
    det["x_pixel_size"] = ai.detector.pixel2 * 1e6
    det["x_pixel_size"].attrs["units"] = "um"
    det["y_pixel_size"] = ai.detector.pixel1 * 1e6
    det["y_pixel_size"].attrs["units"] = "um"
    f2d = ai.getFit2D()
    det["beam_center_x"] = f2d["centerX"]
    det["beam_center_x"].attrs["units"] = "pixel"
    det["beam_center_y"] = f2d["centerY"]
    det["beam_center_y"].attrs["units"] = "pixel"


def export_xy(results: str | Path, folder: str | Path, *, every: int = 1) -> list[Path]:
    """One ``frame_NNNNN.xy`` per good frame (radial, intensity, sigma), plus ``patterns.csv``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with h5py.File(results, "r") as f:
        g = f[find_process_step(f)]
        ru = _unit(g["radial"])
        status, idx = g["status"][()], g["frame_index"][()]
        if "source_frame" in g and (g["source_frame"][()] >= 0).all():
            idx = g["source_frame"][()]  # numbers of the source files/frames
        for k in range(0, len(status), every):
            if status[k] not in PATTERN_OK:  # failed or suspect: no file
                continue
            p = folder / f"frame_{int(idx[k]):05d}.xy"
            np.savetxt(p, np.column_stack([g["radial"][k], g["intensity"][k], g["sigma"][k]]),
                       header=f"radial ({ru})  intensity (counts)  sigma (counts)  frame {idx[k]}",
                       fmt="%.8g")
            written.append(p)
        ok = np.isin(status, PATTERN_OK)
        if ok.any():
            r = g["radial"][int(np.argmax(ok))]
            table = folder / "patterns.csv"
            with open(table, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow([f"radial ({ru})"] + [f"frame {int(i)}" for i in idx[ok]])
                inten = g["intensity"][()][ok]
                for j in range(len(r)):
                    w.writerow([f"{r[j]:.8g}"] + [f"{v:.8g}" for v in inten[:, j]])
            written.append(table)
    return written


def export_fit_csv(results: str | Path, path: str | Path) -> Path | None:
    """A CSV with one row per (frame, peak) of every fit plugin; None if no fits."""
    path = Path(path)
    rows: list[list[Any]] = []
    header = ["plugin", "frame", "status", "peak", "fit_status", "center", "center_err", "fwhm", "fwhm_err",
              "height", "height_err", "area", "area_err", "eta", "chi2_red"]
    with h5py.File(results, "r") as f:
        g = f[find_process_step(f)]
        status, idx = g["status"][()], g["frame_index"][()]
        for name, sub in g.items():
            if not (isinstance(sub, h5py.Group) and "center" in sub):
                continue
            cols = {k: sub[k][()] for k in header[5:]}
            fit_st = sub["status"][()] if "status" in sub else \
                np.where(np.isfinite(cols["center"]), 0, -1)
            for i in range(len(status)):
                for j in range(cols["center"].shape[1]):
                    rows.append([name, int(idx[i]), int(status[i]), j + 1, int(fit_st[i, j])] +
                                [f"{cols[k][i, j]:.8g}" for k in header[5:]])
            header_units = _unit(sub["center"])
    if not rows:
        return None
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header[:5] + [f"{h} ({header_units})" if h.startswith(("center", "fwhm"))
                                 else h for h in header[5:]])
        w.writerows(rows)
    return path


def find_geometry(results: str | Path) -> str:
    """PONI text of a results file: an ``xrd.calibrate`` step's output, or the process
    step's geometry input (file path or step output); '' if none is found."""
    with h5py.File(results, "r") as f:
        step = find_process_step(f)
        inputs = json.loads(f[step].attrs.get("inputs", "{}"))
        ref = str(inputs.get("geometry", ""))
        if "." in ref and ref.split(".", 1)[0] in f:
            sid, out = ref.split(".", 1)
            if out in f[sid]:
                return f[sid][out].asstr()[()]
        if ref and Path(ref).exists():
            return Path(ref).read_text()
        for g in f.values():
            if isinstance(g, h5py.Group) and g.attrs.get("task") == "xrd.calibrate" and "poni" in g:
                return g["poni"].asstr()[()]
    return ""
