"""``matterflow electrons descriptors``: grid descriptors of a structure file or snapshot."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from matterflow.clitools import console, handle_errors, make_progress, parse_key_values
from matterflow.core.errors import InputError

__all__ = ["app", "parse_grid", "parse_species_values", "build_params", "descriptor_writer"]

app = typer.Typer(help="Grid descriptors of a structure file or snapshot.")


def parse_grid(text: str) -> tuple[int, int, int]:
    """``"18,18,18"`` or ``"18x18x18"`` -> (18, 18, 18)."""
    parts = text.replace("x", ",").replace(" ", ",").split(",")
    try:
        vals = tuple(int(p) for p in parts if p)
    except ValueError:
        vals = ()
    if len(vals) != 3 or min(vals) < 1:
        raise InputError(f"--grid: three positive integers like 18,18,18 are needed; got {text!r}")
    return vals  # type: ignore[return-value]


def parse_species_values(text: str, option: str) -> dict[str, float]:
    """``"Al=0.5,Cu=0.7"`` -> {"Al": 0.5, "Cu": 0.7}."""
    return parse_key_values(text, option, key="SPECIES", value="VALUE", example="Al=0.5,Cu=0.7",
                            convert=float, commas=True)


def _read_params_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InputError(f"{path}: parameter file not found")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise InputError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'} ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a mapping of descriptor parameters is needed")
    return data


def build_params(kind: str, params_file: Path | None, overrides: dict[str, Any]):
    """Descriptor parameters from a file (YAML/JSON) and command-line overrides."""
    from pydantic import ValidationError

    from matterflow.core.registry import validation_message
    from matterflow.electrons.descriptors import BispectrumParams, GaussianDescriptorParams

    model = BispectrumParams if kind == "bispectrum" else GaussianDescriptorParams
    values = _read_params_file(params_file) if params_file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    allowed = set(model.model_fields)
    stray = [k for k in overrides if overrides[k] is not None and k not in allowed]
    if stray:
        raise InputError(f"--{stray[0].replace('_', '-')}: not a parameter of {kind} descriptors "
                         f"(accepted: {', '.join(allowed)})")
    try:
        return model(**values)
    except ValidationError as exc:
        raise InputError(validation_message(exc, prefix=str(params_file or "params"),
                                            model=model)) from None


@contextlib.contextmanager
def descriptor_writer(out: Path, *, atoms, grid, params, kind: str, n_features: int,
                      with_coordinates: bool) -> Iterator[Callable[[int, int, Any], None]]:
    """Stream descriptors to ``out`` (.npy or .h5) slab by slab; the file appears when complete.

    Yields ``write(i0, i1, values)`` taking ``values`` of x-planes ``i0:i1``,
    shape ``(i1 - i0, ny, nz, n_features)``. With ``with_coordinates`` the
    Cartesian coordinates of each grid point (Å) come first, as in LAMMPS.
    """
    import numpy as np

    from matterflow.electrons.descriptors._grid import grid_points

    suffix = out.suffix.lower()
    if suffix not in (".npy", ".h5", ".hdf5"):
        raise InputError(f"--out: {out}: a .npy or .h5 file is needed")
    nx, ny, nz = grid
    ncol = n_features + (3 if with_coordinates else 0)
    cell = np.asarray(atoms.get_cell()[:], dtype=float)

    def fill(target, i0: int, i1: int, values) -> None:
        if with_coordinates:
            xyz = grid_points(cell, grid, np.arange(i0 * ny * nz, i1 * ny * nz))
            target[i0:i1, :, :, :3] = xyz.reshape(i1 - i0, ny, nz, 3)
            target[i0:i1, :, :, 3:] = values
        else:
            target[i0:i1] = values

    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        tmp = out.with_name(f".{out.name}.tmp.npy")
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64, shape=(nx, ny, nz, ncol))
        try:
            yield lambda i0, i1, values: fill(arr, i0, i1, values)
            arr.flush()
            del arr
            tmp.replace(out)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return
    from matterflow.core.store import atomic_h5

    with atomic_h5(out) as f:
        f.attrs["format"] = "matterflow.electrons.descriptors"
        f.attrs["kind"] = kind
        f.attrs["params"] = params.model_dump_json()
        f.attrs["with_coordinates"] = bool(with_coordinates)
        ds = f.create_dataset("descriptors", shape=(nx, ny, nz, ncol), dtype="f8", chunks=True)
        ds.attrs["units"] = "dimensionless" if kind == "bispectrum" else "1/Å^3"
        ds.attrs["shape"] = "(nx, ny, nz, n_features)" + (" with x, y, z (Å) first"
                                                            if with_coordinates else "")
        f.create_dataset("grid_shape", data=np.array(grid))
        f.create_dataset("atoms/cell", data=cell).attrs["units"] = "Å"
        f.create_dataset("atoms/positions", data=atoms.get_positions()).attrs["units"] = "Å"
        f.create_dataset("atoms/numbers", data=atoms.get_atomic_numbers())
        yield lambda i0, i1, values: fill(ds, i0, i1, values)



@app.command("descriptors")
@handle_errors
def descriptors_cmd(
    structure: Annotated[Path, typer.Argument(
        help="Structure file ASE can read (POSCAR, .cif, .xyz, ...) or a snapshot .h5.")],
    grid: Annotated[str | None, typer.Option(
        help="Grid NX,NY,NZ (default: the snapshot's grid).")] = None,
    kind: Annotated[str, typer.Option(help="bispectrum or gaussian.")] = "bispectrum",
    params: Annotated[Path | None, typer.Option(
        "--params", help="YAML/JSON file of descriptor parameters (LAMMPS names).")] = None,
    twojmax: Annotated[int | None, typer.Option(help="Bispectrum band limit 2J.")] = None,
    rcutfac: Annotated[float | None, typer.Option(help="Cut-off scale, Å.")] = None,
    rfac0: Annotated[float | None, typer.Option(help="Bispectrum rfac0.")] = None,
    rmin0: Annotated[float | None, typer.Option(help="Bispectrum rmin0, Å.")] = None,
    radius: Annotated[str | None, typer.Option(help="Radii per species, e.g. Al=0.5,Cu=0.7.")] = None,
    weight: Annotated[str | None, typer.Option(help="Bispectrum weights, e.g. Al=1.0.")] = None,
    sigma: Annotated[str | None, typer.Option(help="Gaussian widths in Å, e.g. Al=0.2.")] = None,
    switch: Annotated[bool | None, typer.Option("--switch/--no-switch",
                                                help="Switching function (switchflag).")] = None,
    bzero: Annotated[bool | None, typer.Option("--bzero/--no-bzero",
                                               help="Subtract B of an empty site (bzeroflag).")] = None,
    quadratic: Annotated[bool | None, typer.Option("--quadratic/--no-quadratic",
                                                   help="Append products B_i B_j.")] = None,
    with_coordinates: Annotated[bool, typer.Option(
        "--with-coordinates", help="Prepend x, y, z of each grid point (LAMMPS/MALA layout).")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npy or .h5.")] = Path("descriptors.npy"),
    chunk: Annotated[int, typer.Option(min=1, help="Grid points per chunk, rounded to whole "
                                       "x-planes (bounds memory; progress).")] = 8192,
    threads: Annotated[int | None, typer.Option(min=1, help="Numba threads.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Bispectrum (LAMMPS sna/grid) or Gaussian descriptors of a structure on a grid."""
    import time

    import numpy as np

    from matterflow.electrons.descriptor_tasks import load_structure
    from matterflow.electrons.descriptors import compute_descriptors, n_features

    if kind not in ("bispectrum", "gaussian"):
        raise InputError(f"--kind: bispectrum or gaussian; got {kind!r}")
    atoms, own_grid = load_structure(structure)
    shape = parse_grid(grid) if grid else own_grid
    if shape is None:
        raise InputError(f"--grid: needed for {structure} (only snapshot files carry a grid); "
                         "e.g. --grid 18,18,18")
    overrides: dict[str, Any] = {"rcutfac": rcutfac,
                                 "radius": parse_species_values(radius, "--radius") if radius else None}
    if kind == "bispectrum":
        overrides.update(twojmax=twojmax, rfac0=rfac0, rmin0=rmin0, switchflag=switch,
                         bzeroflag=bzero, quadraticflag=quadratic,
                         weight=parse_species_values(weight, "--weight") if weight else None)
    else:
        overrides["sigma"] = parse_species_values(sigma, "--sigma") if sigma else None
        for opt, v in (("twojmax", twojmax), ("rfac0", rfac0), ("rmin0", rmin0),
                       ("weight", weight), ("switch", switch), ("bzero", bzero),
                       ("quadratic", quadratic)):
            if v is not None:
                raise InputError(f"--{opt}: only for --kind bispectrum")
    p = build_params(kind, params, overrides)
    n = int(np.prod(shape))
    nf = n_features(p)
    plane = shape[1] * shape[2]
    planes = max(1, chunk // plane)          # whole x-planes per chunk
    t0 = time.perf_counter()
    with descriptor_writer(out, atoms=atoms, grid=shape, params=p, kind=kind, n_features=nf,
                           with_coordinates=with_coordinates) as write, \
            make_progress(quiet) as progress:
        bar = progress.add_task(f"{kind} descriptors", total=n)
        for i0 in range(0, shape[0], planes):
            i1 = min(shape[0], i0 + planes)
            vals = compute_descriptors(atoms, shape, p, points=slice(i0 * plane, i1 * plane),
                                       n_threads=threads)
            write(i0, i1, vals.reshape(i1 - i0, shape[1], shape[2], nf))
            progress.advance(bar, (i1 - i0) * plane)
    seconds = time.perf_counter() - t0
    console.print(f"{kind}: {nf} features on grid {shape[0]}x{shape[1]}x{shape[2]} "
                  f"for {len(atoms)} atoms in {seconds:.2f} s "
                  f"({1e6 * seconds / n:.1f} µs per grid point) -> {out}")
