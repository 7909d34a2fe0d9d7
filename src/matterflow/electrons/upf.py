"""Unified pseudopotential format (UPF v2) files: valence charge, core charge, atomic density.

What the total energy of a plane-wave DFT code (Quantum ESPRESSO) needs from its
pseudopotentials, read from the XML of a UPF 2 file:

- ``z_valence`` (``PP_HEADER``): the ionic charge of the Ewald energy;
- ``PP_NLCC``: the pseudised core density :math:`\\rho_c(r)` (electrons/Bohr³) of the
  non-linear core correction, added to the valence density in the exchange-correlation
  energy (``core_correction="true"``);
- ``PP_RHOATOM``: :math:`4\\pi r^2 \\rho_\\mathrm{atom}(r)`, the atomic valence density QE starts
  its SCF from;
- ``PP_MESH``: the radial grid :math:`r_i` and its integration weights ``rab`` (Bohr);
- ``functional`` and ``element``.

Only the parts above are read (projectors, augmentation charges are not needed for
energies from a density). UPF 1 (the older, non-XML layout) is refused with a message.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matterflow.core.errors import InputError
from matterflow.core.registry import quantity

__all__ = ["Pseudopotential", "read_upf", "radial_fourier"]


@dataclass(frozen=True)
class Pseudopotential:
    """The parts of a UPF pseudopotential that the energy terms use (atomic units)."""

    path: str = quantity("dimensionless", "file it was read from")
    element: str = quantity("dimensionless", "chemical symbol")
    z_valence: float = quantity("e", "ionic (valence) charge")
    functional: str = quantity("dimensionless", "as in PP_HEADER, e.g. 'PBE'")
    pseudo_type: str = quantity("dimensionless", "NC, SL, US/USPP, PAW")
    r: np.ndarray = quantity("Bohr", "(mesh,) radial grid")
    rab: np.ndarray = quantity("Bohr", "(mesh,) dr/di, the integration weights")
    core_density: np.ndarray | None = quantity("1/Bohr^3", "(mesh,) NLCC core density; None if none")
    atomic_density: np.ndarray | None = quantity("1/Bohr", "(mesh,) 4 pi r^2 rho_atom(r)")

    @property
    def has_core_correction(self) -> bool:
        return self.core_density is not None


def _numbers(node: ET.Element | None, path: str, field: str, n: int | None) -> np.ndarray:
    if node is None or node.text is None:
        raise InputError(f"{path}: UPF field {field} is missing")
    try:
        arr = np.array(node.text.split(), dtype=float)
    except ValueError as exc:
        raise InputError(f"{path}: UPF field {field} holds a value that is not a number ({exc})") \
            from None
    if n is not None and len(arr) < n:
        raise InputError(f"{path}: UPF field {field} has {len(arr)} values; PP_MESH has {n} points")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{path}: UPF field {field} contains NaN or inf")
    return arr[:n] if n is not None else arr


def read_upf(path: str | os.PathLike, *, element: str | None = None) -> Pseudopotential:
    """Read a UPF 2 pseudopotential; ``element`` (if given) must be the file's element.

    Raises :class:`InputError` naming the file and the field when the file is missing,
    is not UPF 2 XML, lacks a needed field, or is for another element.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: pseudopotential file not found")
    text = p.read_text(errors="replace")
    head = text.lstrip()[:200]
    if "<UPF" not in head and "<?xml" not in head:
        if "<PP_HEADER>" in text[:5000]:
            raise InputError(f"{p}: UPF version 1 (not XML); only UPF 2 files are read. Convert it "
                             "with Quantum ESPRESSO's upfconv.x -u")
        raise InputError(f"{p}: not a UPF pseudopotential (no <UPF ...> element at the start)")
    # Some generators write bare '&' in PP_INFO text; it is not XML, and not needed here.
    start, end = text.find("<PP_INFO"), text.find("</PP_INFO>")
    if 0 <= start < end:
        text = text[:start] + text[end + len("</PP_INFO>"):]
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(f"{p}: UPF file does not parse as XML ({exc})") from None
    if root.tag != "UPF":
        raise InputError(f"{p}: root element is <{root.tag}>; a UPF 2 file has <UPF version=...>")
    header = root.find("PP_HEADER")
    if header is None:
        raise InputError(f"{p}: UPF field PP_HEADER is missing")
    attrs = {k: v.strip() for k, v in header.attrib.items()}
    for key in ("element", "z_valence", "functional"):
        if key not in attrs:
            raise InputError(f"{p}: UPF field PP_HEADER.{key} is missing")
    el = attrs["element"].strip()
    if element is not None and el.lower() != element.strip().lower():
        raise InputError(f"{p}: UPF field PP_HEADER.element is {el!r}; the species it is given "
                         f"for is {element!r}")
    try:
        z = float(attrs["z_valence"].replace("d", "e").replace("D", "e"))
    except ValueError:
        raise InputError(f"{p}: UPF field PP_HEADER.z_valence is {attrs['z_valence']!r}, "
                         "not a number") from None
    if not z > 0:
        raise InputError(f"{p}: UPF field PP_HEADER.z_valence must be > 0; got {z}")
    mesh_node = root.find("PP_MESH")
    if mesh_node is None:
        raise InputError(f"{p}: UPF field PP_MESH is missing")
    n_attr = mesh_node.attrib.get("mesh") or attrs.get("mesh_size")
    n = int(n_attr) if n_attr else None
    r = _numbers(mesh_node.find("PP_R"), str(p), "PP_MESH/PP_R", n)
    rab = _numbers(mesh_node.find("PP_RAB"), str(p), "PP_MESH/PP_RAB", len(r))
    nlcc = attrs.get("core_correction", "false").strip().lower() in (".true.", "true", "t", "1")
    core = _numbers(root.find("PP_NLCC"), str(p), "PP_NLCC", len(r)) if nlcc else None
    rho_node = root.find("PP_RHOATOM")
    rho = None if rho_node is None else _numbers(rho_node, str(p), "PP_RHOATOM", len(r))
    ptype = attrs.get("pseudo_type", "")
    return Pseudopotential(path=str(p), element=el, z_valence=z, functional=attrs["functional"],
                           pseudo_type=ptype, r=r, rab=rab, core_density=core, atomic_density=rho)


def _simpson(f: np.ndarray, rab: np.ndarray) -> np.ndarray:
    """Quantum ESPRESSO's ``simpson`` on the last axis: weights 1/3, 4/3, 2/3, ... of f*rab.

    An even number of points drops the last one (as QE does).
    """
    m = f.shape[-1]
    if m % 2 == 0:
        m -= 1
    w = np.full(m, 2.0)
    w[1:m:2] = 4.0
    w[0] = w[m - 1] = 1.0
    return (f[..., :m] * rab[:m] * w) @ np.ones(m) / 3.0


def radial_fourier(r: np.ndarray, rab: np.ndarray, f_r2: np.ndarray, g: np.ndarray, *,
                   rcut: float = 10.0) -> np.ndarray:
    """:math:`\\int_0^{r_c} f(r)\\,\\sin(gr)/(gr)\\,dr` for each ``g`` (1/Bohr), QE's way.

    ``f_r2`` is the radial function already multiplied by :math:`r^2` (or :math:`4\\pi r^2`),
    integrated with QE's Simpson rule up to the first mesh point beyond ``rcut`` (10 Bohr,
    QE's ``rcut``), as ``drhoc`` and ``atomic_rho_g`` do.
    """
    msh = int(np.searchsorted(r, rcut, side="right")) + 1
    msh = min(2 * ((msh + 1) // 2) - 1, len(r))  # QE forces an odd count
    r, rab, f = r[:msh], rab[:msh], f_r2[:msh]
    g = np.asarray(g, dtype=float)
    out = np.empty(g.shape)
    flat = g.ravel()
    res = np.empty(flat.shape)
    for i0 in range(0, len(flat), 512):
        gg = flat[i0:i0 + 512, None] * r[None, :]
        res[i0:i0 + 512] = _simpson(f * np.sinc(gg / np.pi), rab)
    out[...] = res.reshape(g.shape)
    return out
