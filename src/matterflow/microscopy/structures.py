"""Crystal structures for the forward model: built-in cells, files through ASE, zone axis, slicing.

A structure is an ASE ``Atoms`` whose cell is orthogonal with the beam along its
third vector ``c`` (the repeat length along the beam, Å); the first two cell
vectors span the periodic image plane (``cell_xy``, Å). :func:`oriented` brings
a file's orthogonal cell into that form for a beam along ``a``, ``b`` or ``c``;
:func:`slices` cuts one repeat into slices (each atom's whole projected potential
in the slice holding its centre), the input of
:func:`matterflow.microscopy.potentials.slice_potentials`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["BUILTIN", "SlicedCell", "builtin", "load_structure", "oriented", "slices"]


def _perovskite(a_site: str, a: float, c: float | None = None):
    from ase import Atoms

    c = c or a
    return Atoms([a_site, "Ti", "O", "O", "O"], cell=(a, a, c), pbc=True,
                 scaled_positions=[(0, 0, 0), (.5, .5, .5), (.5, .5, 0), (.5, 0, .5), (0, .5, .5)])


def _si110():
    from ase.build import bulk

    at = bulk("Si", "diamond", a=5.431, orthorhombic=True)  # cell a/√2, a/√2, a along [110],[1-10],[001]
    return oriented(at, "a")


def _au001():
    from ase.build import bulk

    return bulk("Au", "fcc", a=4.078, cubic=True)


def _hexagonal_rect(atoms):
    """Rectangular (a, a√3) cell of a hexagonal ``atoms`` (c unchanged)."""
    from ase.build import make_supercell

    rect = make_supercell(atoms, [[1, 0, 0], [1, 2, 0], [0, 0, 1]])
    a = atoms.cell.lengths()[0]
    pos = rect.get_positions()
    rect.set_cell([a, a * math.sqrt(3), atoms.cell.lengths()[2]], scale_atoms=False)
    rect.set_positions(pos)
    rect.wrap()
    return rect


def _mos2():
    from ase import Atoms

    a, c = 3.16, 12.30  # 2H-MoS2, P6_3/mmc, S at 4f with z = 0.621
    hexa = Atoms("Mo2S4", cell=[[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]], pbc=True,
                 scaled_positions=[(1 / 3, 2 / 3, .25), (2 / 3, 1 / 3, .75),
                                   (2 / 3, 1 / 3, .121), (2 / 3, 1 / 3, .379),
                                   (1 / 3, 2 / 3, .621), (1 / 3, 2 / 3, .879)])
    return _hexagonal_rect(hexa)


def _graphite():
    from ase import Atoms

    a, c = 2.464, 6.711
    hexa = Atoms("C4", cell=[[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]], pbc=True,
                 scaled_positions=[(0, 0, .25), (1 / 3, 2 / 3, .25), (0, 0, .75), (2 / 3, 1 / 3, .75)])
    return _hexagonal_rect(hexa)


#: name -> (builder, one-line description); every cell has the beam along c.
BUILTIN = {
    "SrTiO3": (lambda: _perovskite("Sr", 3.905), "cubic perovskite SrTiO3 [001], a = 3.905 Å"),
    "BaTiO3": (lambda: _perovskite("Ba", 3.994, 4.034),
               "tetragonal BaTiO3 [001], a = 3.994 Å, c = 4.034 Å"),
    "SrTiO3-strained": (lambda: _perovskite("Sr", 3.905 * 1.02, 3.905 * 0.98),
                        "SrTiO3 [001] with 2 % in-plane tension, 2 % compression along c"),
    "Si110": (_si110, "diamond Si [110], a = 5.431 Å (cell a/√2 × a, repeat a/√2)"),
    "Au001": (_au001, "fcc Au [001], a = 4.078 Å"),
    "MoS2": (_mos2, "2H-MoS2 [001], a = 3.16 Å, c = 12.30 Å (rectangular a × a√3 cell)"),
    "graphite": (_graphite, "AB graphite [001], a = 2.464 Å, c = 6.711 Å (rectangular cell)"),
}


def builtin(name: str):
    """The ASE ``Atoms`` of a built-in structure (beam along c)."""
    if name not in BUILTIN:
        raise InputError(f"structure {name!r} unknown; built-in: {', '.join(BUILTIN)} "
                         "(or a structure file: CIF, POSCAR, XYZ with cell, ... read by ASE)")
    return BUILTIN[name][0]()


def load_structure(spec: str | Path, zone: str = "c"):
    """A built-in name or a structure file (any format ASE reads), oriented for a beam along
    the cell vector ``zone`` (``a``, ``b`` or ``c``); the cell must be orthogonal."""
    if str(spec) in BUILTIN:
        return builtin(str(spec)) if zone == "c" else oriented(builtin(str(spec)), zone)
    path = Path(spec)
    if not path.exists():
        builtin(str(spec))  # raises the message naming the built-ins
    from ase.io import read

    try:
        atoms = read(path)
    except Exception as exc:  # ASE raises many types; name the file and its message
        raise InputError(f"{path}: not a structure file ASE can read ({type(exc).__name__}: "
                         f"{str(exc).strip() or 'parse error'})") from None
    return oriented(atoms, zone)


def oriented(atoms, zone: str = "c"):
    """A copy of ``atoms`` whose cell axes are permuted so that the beam runs along the new c.

    ``zone``: the cell vector (``a``, ``b``, ``c``) parallel to the beam. The cell must be
    orthogonal (angles 90° within 0.01°); other zone axes need an orthogonal supercell first.
    """
    if zone not in ("a", "b", "c"):
        raise InputError(f"zone {zone!r}: give the cell vector along the beam: a, b or c")
    angles = atoms.cell.angles()
    if np.abs(angles - 90).max() > 0.01:
        raise InputError(f"structure cell angles {np.round(angles, 3).tolist()}°: an orthogonal "
                         "cell is needed (build an orthogonal supercell first)")
    order = {"a": [1, 2, 0], "b": [2, 0, 1], "c": [0, 1, 2]}[zone]
    out = atoms.copy()
    lengths = atoms.cell.lengths()
    frac = atoms.get_scaled_positions(wrap=True)[:, order]
    out.set_cell(np.diag(lengths[order]), scale_atoms=False)
    out.set_scaled_positions(frac)
    out.pbc = True
    return out


@dataclass(frozen=True)
class SlicedCell:
    """One repeat of a structure along the beam, cut into slices."""

    positions_xy: np.ndarray  # (n_atoms, 2) in-plane positions, Å
    symbols: list[str]        # (n_atoms,) element symbols
    slice_index: np.ndarray   # (n_atoms,) slice of each atom, 0..n_slices-1
    n_slices: int
    cell_xy: tuple[float, float]  # periodic image-plane cell, Å
    repeat: float                 # repeat length along the beam (one "unit cell" of thickness), Å

    @property
    def slice_thickness(self) -> float:
        """Å."""
        return self.repeat / self.n_slices


def slices(atoms, max_slice: float = 2.0) -> SlicedCell:
    """Cut one repeat of ``atoms`` (beam along c, orthogonal cell) into ``ceil(c/max_slice)``
    equal slices of at most ``max_slice`` Å."""
    lengths = atoms.cell.lengths()
    n = max(1, math.ceil(lengths[2] / max_slice - 1e-9))
    frac = atoms.get_scaled_positions(wrap=True)
    # a small offset keeps atoms at z = 0 exactly and at z = 1/n in distinct slices
    idx = np.floor((frac[:, 2] + 1e-6) * n).astype(int) % n
    return SlicedCell(frac[:, :2] * lengths[:2], list(atoms.get_chemical_symbols()), idx, n,
                      (float(lengths[0]), float(lengths[1])), float(lengths[2]))
