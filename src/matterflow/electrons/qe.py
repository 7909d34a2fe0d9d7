"""Quantum ESPRESSO files: ``pw.x`` output and input, ``pp.x`` LDOS input.

:func:`read_pw_output` reads what a total energy from a density needs, and what QE printed
to compare with: the cell and atoms (``celldm(1)``, crystal axes, positions in alat units),
electron count, functional, smearing kind and width, FFT grid, cutoffs, pseudopotential
files, k-point weights, the last Kohn-Sham eigenvalues (``verbosity='high'``), the Fermi
level and the energy terms (Ry in the file, eV here). :func:`read_pw_input` reads the
``&SYSTEM`` namelist and ``ATOMIC_SPECIES`` of a ``pw.x`` input (its ``degauss`` has more
digits than the output prints); :func:`read_pp_ldos_input` the LDOS energy grid and
broadening of a ``pp.x`` input (``plot_num=3``).

Units: eV, Å, K (QE prints Ry, Bohr). A missing field is an :class:`InputError` naming the
file and the line QE prints for it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from matterflow.core.errors import InputError
from matterflow.core.registry import quantity

__all__ = ["PwOutput", "read_pw_output", "read_pw_input", "read_pp_ldos_input",
           "RYDBERG_EV", "BOHR_A", "KB_EV", "SMEARINGS"]

RYDBERG_EV = 13.605693122994
BOHR_A = 0.52917721092
KB_EV = 8.617333262e-5

SMEARINGS = {"fermi-dirac": "fermi-dirac", "fd": "fermi-dirac", "f-d": "fermi-dirac",
             "fermi-dirac smearing": "fermi-dirac", "gaussian": "gaussian", "gauss": "gaussian",
             "gaussian smearing": "gaussian"}
"""Smearing names (QE input or output) accepted, and the kind each means."""

_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eEdD][-+]?\d+)?"
_TERMS = {  # QE's printed line -> key (values in Ry)
    "total": r"^!\s+total energy\s+=\s+(" + _FLOAT + r")\s+Ry",
    "minus_ts": r"smearing contrib\. \(-TS\)\s+=\s+(" + _FLOAT + r")\s+Ry",
    "internal": r"internal energy E=F\+TS\s+=\s+(" + _FLOAT + r")\s+Ry",
    "one_electron": r"one-electron contribution\s+=\s+(" + _FLOAT + r")\s+Ry",
    "hartree": r"hartree contribution\s+=\s+(" + _FLOAT + r")\s+Ry",
    "xc": r"xc contribution\s+=\s+(" + _FLOAT + r")\s+Ry",
    "ewald": r"ewald contribution\s+=\s+(" + _FLOAT + r")\s+Ry",
}


@dataclass(frozen=True)
class PwOutput:
    """What a ``pw.x`` output holds (eV, Å, K)."""

    path: str = quantity("dimensionless", "file read")
    atoms: Atoms = quantity("Å", "cell and positions as QE printed them")
    n_electrons: float = quantity("e", "valence electrons per cell")
    functional: str = quantity("dimensionless", "QE's 'Exchange-correlation=' name, e.g. 'PBE'")
    smearing: str | None = quantity("dimensionless", "'fermi-dirac', 'gaussian' or None")
    degauss_ev: float = quantity("eV", "smearing width (QE's degauss)")
    fft_grid: tuple[int, int, int] = quantity("dimensionless", "dense FFT grid (nr1, nr2, nr3)")
    ecutrho_ev: float = quantity("eV", "charge-density cutoff")
    pseudopotentials: dict = quantity("dimensionless", "species -> pseudopotential file name")
    zval: dict = quantity("e", "species -> valence charge QE printed")
    eigenvalues_ev: np.ndarray | None = quantity("eV", "(nk, nbnd) last printed eigenvalues")
    kweights: np.ndarray | None = quantity("dimensionless", "(nk,) summing to 1")
    fermi_ev: float = quantity("eV", "Fermi energy QE printed (nan if none)")
    terms_ev: dict = quantity("eV", "total, minus_ts, internal, one_electron, hartree, xc, ewald",
                              default_factory=dict)
    version: str = quantity("dimensionless", "QE version", default="")

    @property
    def temperature_k(self) -> float:
        """Electronic temperature k_B T = degauss (Fermi-Dirac smearing), K."""
        return self.degauss_ev / KB_EV


def _find(pattern: str, text: str, path: str, what: str, *, flags: int = re.M) -> re.Match:
    m = re.search(pattern, text, flags)
    if m is None:
        raise InputError(f"{path}: QE output has no '{what}' line; is it a complete pw.x output?")
    return m


def _f(s: str) -> float:
    return float(s.replace("d", "e").replace("D", "e"))


def _vec(line: str) -> list[float]:
    m = re.search(r"=\s*\((.*)\)", line)
    if m is None:
        raise InputError(f"expected 'name = ( x y z )'; got {line.strip()!r}")
    return [float(v) for v in re.findall(r"-?\d+\.\d+", m.group(1))]


def read_pw_output(path: str | os.PathLike) -> PwOutput:
    """Read a Quantum ESPRESSO ``pw.x`` (SCF) output; see the module docstring."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: QE output file not found")
    text = p.read_text(errors="replace")
    where = str(p)
    if "Program PWSCF" not in text[:5000]:
        raise InputError(f"{p}: not a pw.x output (no 'Program PWSCF' in its first lines)")
    version = re.search(r"Program PWSCF v\.(\S+)", text)
    if re.search(r"SPIN UP|spin up/dw Fermi|noncolin", text):
        raise InputError(f"{p}: a spin-polarised or non-collinear pw.x run; only spin-unpolarised "
                         "(nspin=1) outputs are read")
    nat = int(_find(r"number of atoms/cell\s+=\s+(\d+)", text, where, "number of atoms/cell").group(1))
    nel = _f(_find(r"number of electrons\s+=\s+(" + _FLOAT + ")", text, where,
                   "number of electrons").group(1))
    xc = _find(r"Exchange-correlation\s*=\s*(.+)$", text, where, "Exchange-correlation").group(1)
    xc = xc.split("(")[0].strip()
    alat = _f(_find(r"celldm\(1\)=\s*(" + _FLOAT + ")", text, where, "celldm(1)").group(1))
    m = _find(r"crystal axes: \(cart\. coord\. in units of alat\)\s*\n((?:.*\n){3})", text, where,
              "crystal axes")
    cell = np.array([_vec(line) for line in m.group(1).splitlines()]) * alat * BOHR_A
    m = _find(r"site n\.\s+atom\s+positions \(alat units\)\s*\n", text, where,
              "site n. atom positions (alat units)")
    lines = text[m.end():].splitlines()[:nat]
    symbols, pos = [], []
    for line in lines:
        mm = re.match(r"\s*\d+\s+(\S+)\s+tau\(\s*\d+\)\s*=\s*\(", line)
        if mm is None:
            raise InputError(f"{p}: expected {nat} atom lines after 'positions (alat units)'; "
                             f"got {line.strip()!r}")
        symbols.append(re.sub(r"[\d_\-]+$", "", mm.group(1)))
        pos.append(_vec(line))
    atoms = Atoms(symbols=symbols, positions=np.array(pos) * alat * BOHR_A, cell=cell, pbc=True)
    fft = tuple(int(v) for v in _find(r"Dense\s+grid:.*FFT dimensions:\s*\(\s*(\d+),\s*(\d+),\s*(\d+)\)",
                                      text, where, "Dense grid ... FFT dimensions").groups())
    ecutrho = _f(_find(r"charge density cutoff\s+=\s+(" + _FLOAT + r")\s+Ry", text, where,
                       "charge density cutoff").group(1)) * RYDBERG_EV
    smearing, degauss = None, 0.0
    m = re.search(r"number of k points=\s*\d+\s+(.*?)smearing, width \(Ry\)=\s*(" + _FLOAT + ")", text)
    if m:
        kind = m.group(1).strip().lower()
        smearing = SMEARINGS.get(kind, kind)
        degauss = _f(m.group(2)) * RYDBERG_EV
    pseudos = dict(re.findall(r"PseudoPot\. #\s*\d+ for (\S+) read from file:\s*\n\s*(\S+)", text))
    pseudos = {k: Path(v).name for k, v in pseudos.items()}
    zval = {k: _f(v) for k, v in re.findall(r"PseudoPot\. #\s*\d+ for (\S+) read from file:"
                                            r"(?:.*\n){1,8}?.*Zval\s*=\s*(" + _FLOAT + ")", text)}
    # k-point weights: the first list (cart. coord.), one line per point
    nk_m = re.search(r"number of k points=\s*(\d+)", text)
    kw = None
    if nk_m:
        nk = int(nk_m.group(1))
        w = re.findall(r"k\(\s*\d+\) = \(.*\), wk =\s*(" + _FLOAT + ")", text[nk_m.end():])
        if len(w) >= nk:
            kw = np.array([_f(v) for v in w[:nk]])
            kw = kw / kw.sum()
    eig = None
    end = max(text.rfind("End of self-consistent calculation"), text.rfind("End of band structure"))
    if end >= 0 and kw is not None:
        block = text[end:]
        stop = re.search(r"the Fermi energy is|highest occupied|the spin up/dw Fermi", block)
        block = block[:stop.start()] if stop else block
        chunks = re.split(r"\n\s*k =.*bands \(ev\):\s*\n", block)[1:]
        rows = []
        for c in chunks:
            c = c.split("occupation numbers")[0]
            rows.append([float(v) for v in re.findall(r"-?\d+\.\d+", c)])
        if len(rows) == len(kw) and len({len(r) for r in rows}) == 1:
            eig = np.array(rows)
    fermi = re.findall(r"the Fermi energy is\s+(" + _FLOAT + r")\s+ev", text)
    terms = {}
    for key, pat in _TERMS.items():
        found = re.findall(pat, text, re.M)
        if found:
            terms[key] = _f(found[-1]) * RYDBERG_EV
    if "total" not in terms:
        raise InputError(f"{p}: QE output has no '!    total energy' line (did the SCF converge?)")
    return PwOutput(path=where, atoms=atoms, n_electrons=nel, functional=xc, smearing=smearing,
                    degauss_ev=degauss, fft_grid=fft, ecutrho_ev=ecutrho, pseudopotentials=pseudos,
                    zval=zval, eigenvalues_ev=eig, kweights=kw,
                    fermi_ev=_f(fermi[-1]) if fermi else float("nan"), terms_ev=terms,
                    version=version.group(1) if version else "")


def _namelists(text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for m in re.finditer(r"&(\w+)(.*?)\n\s*/", text, re.S):
        body = re.sub(r"!.*", "", m.group(2))
        vals = {}
        for mm in re.finditer(r"(\w+(?:\(\s*\d+\s*\))?)\s*=\s*('[^']*'|\"[^\"]*\"|[^,\s]+)", body):
            vals[mm.group(1).lower().replace(" ", "")] = mm.group(2).strip("'\"")
        out[m.group(1).lower()] = vals
    return out


@dataclass(frozen=True)
class PwInput:
    """``&SYSTEM`` values and species of a ``pw.x`` input (eV)."""

    path: str = quantity("dimensionless", "file read")
    system: dict = quantity("dimensionless", "&SYSTEM name -> value (text)")
    species: dict = quantity("dimensionless", "species -> pseudopotential file name")
    pseudo_dir: str | None = quantity("dimensionless", "&CONTROL pseudo_dir", default=None)
    degauss_ev: float | None = quantity("eV", "degauss (None if not set)", default=None)
    smearing: str | None = quantity("dimensionless", "kind (None if not smeared)", default=None)
    extra: dict = field(default_factory=dict, metadata={"units": "dimensionless"})


def read_pw_input(path: str | os.PathLike) -> PwInput:
    """Read ``&SYSTEM`` (degauss, smearing, ...) and ``ATOMIC_SPECIES`` of a ``pw.x`` input."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: pw.x input file not found")
    text = p.read_text(errors="replace")
    nl = _namelists(text)
    if "system" not in nl:
        raise InputError(f"{p}: no &SYSTEM namelist; is it a pw.x input?")
    system = nl["system"]
    species: dict[str, str] = {}
    m = re.search(r"^\s*ATOMIC_SPECIES.*\n((?:\s*\S+\s+\S+\s+\S+.*\n?)+)", text, re.M | re.I)
    if m:
        for line in m.group(1).splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[0].upper() in ("K_POINTS", "CELL_PARAMETERS",
                                                      "ATOMIC_POSITIONS"):
                break
            species[parts[0]] = parts[2]
    degauss = _f(system["degauss"]) * RYDBERG_EV if "degauss" in system else None
    kind = system.get("smearing", "gaussian").lower() if system.get("occupations", "").lower() \
        == "smearing" else None
    if kind is not None:
        kind = SMEARINGS.get(kind, kind)
    return PwInput(path=str(p), system=system, species=species,
                   pseudo_dir=nl.get("control", {}).get("pseudo_dir"), degauss_ev=degauss,
                   smearing=kind)


def read_pp_ldos_input(path: str | os.PathLike) -> dict[str, float]:
    """LDOS grid of a ``pp.x`` input with ``plot_num=3``: ``emin_ev``, ``delta_e_ev``,
    ``emax_ev``, ``degauss_ldos_ev`` (QE's Gaussian :math:`e^{-x^2}`, x = ΔE/degauss) and
    ``sigma_ev`` = degauss_ldos/√2 (the standard deviation, matterflow's LDOS width)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: pp.x input file not found")
    nl = _namelists(p.read_text(errors="replace"))
    pp = nl.get("inputpp")
    if pp is None:
        raise InputError(f"{p}: no &INPUTPP namelist; is it a pp.x input?")
    if pp.get("plot_num", "").strip() != "3":
        raise InputError(f"{p}: &INPUTPP plot_num is {pp.get('plot_num')!r}; the LDOS is plot_num=3")
    try:
        emin, emax = _f(pp["emin"]), _f(pp["emax"])
        de = _f(pp.get("delta_e", "0.1"))
        deg = _f(pp["degauss_ldos"]) if "degauss_ldos" in pp else de
    except KeyError as exc:
        raise InputError(f"{p}: &INPUTPP has no {exc.args[0]}") from None
    except ValueError as exc:
        raise InputError(f"{p}: &INPUTPP value is not a number ({exc})") from None
    if de <= 0 or deg <= 0:
        raise InputError(f"{p}: &INPUTPP delta_e and degauss_ldos must be > 0; got {de}, {deg}")
    return {"emin_ev": emin, "emax_ev": emax, "delta_e_ev": de, "degauss_ldos_ev": deg,
            "sigma_ev": deg / np.sqrt(2.0)}
