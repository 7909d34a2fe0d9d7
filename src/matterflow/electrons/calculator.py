"""ASE calculator backed by an LDOS model: energy, band energy, DOS and density.

::

    from matterflow.electrons import Calculator
    atoms.calc = Calculator(model="model.pt")
    atoms.get_potential_energy()            # total (free) energy, eV
    atoms.calc.results["band_energy"]       # eV
    atoms.calc.results["dos"]               # (n_energies,) states/eV
    atoms.calc.results["density"]           # (nx, ny, nz) electrons/Å³

Forces and stress would need the derivatives of the descriptors with respect
to atomic positions; asking for them raises ASE's
``PropertyNotImplementedError`` with a message that says so.
"""

from __future__ import annotations

import os
from typing import Any

from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from matterflow.core.errors import InputError
from matterflow.electrons.model import LdosModel, load_model

__all__ = ["Calculator"]


class Calculator(AseCalculator):
    """ASE calculator: an LDOS model predicts energy, band energy, DOS, density, Fermi level.

    Parameters
    ----------
    model : LdosModel or path
        A fitted model, or the file written by ``LdosModel.save``.
    chunk_points : int
        Grid points per chunk of inference (memory bound).
    scheduler : str
        Dask scheduler of the chunks (``"threads"``, ``"synchronous"``, ...).
    grid_shape : (nx, ny, nz), optional
        Default: the training grid spacing.
    """

    implemented_properties = ["energy", "free_energy", "band_energy", "fermi_level", "dos", "density"]
    _not_implemented = {
        "forces": "forces need derivatives of the grid descriptors with respect to atomic positions",
        "stress": "stress needs derivatives of the descriptors and energy with respect to the cell",
    }

    def __init__(self, model: LdosModel | str | os.PathLike, *, chunk_points: int = 16384,
                 scheduler: str = "threads", grid_shape: tuple[int, int, int] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(model, (str, os.PathLike)):
            model = load_model(model)
        if not isinstance(model, LdosModel):
            raise InputError(f"model: an LdosModel or the path of a saved model is needed; got "
                             f"{type(model).__name__}")
        self.model = model
        self.chunk_points = chunk_points
        self.scheduler = scheduler
        self.grid_shape = grid_shape
        self.prediction = None

    def _refuse(self, name: str) -> None:
        why = self._not_implemented.get(name, "the LDOS model does not give it")
        raise PropertyNotImplementedError(
            f"matterflow.electrons.Calculator cannot compute '{name}': {why}. It gives: "
            f"{', '.join(self.implemented_properties)}.")

    def get_property(self, name: str, atoms: Any = None, allow_calculation: bool = True) -> Any:
        if name not in self.implemented_properties:
            self._refuse(name)
        return super().get_property(name, atoms, allow_calculation)

    def calculate(self, atoms: Any = None, properties: Any = ("energy",),
                  system_changes: Any = all_changes) -> None:
        for name in properties:
            if name not in self.implemented_properties:
                self._refuse(name)
        super().calculate(atoms, properties, system_changes)
        from matterflow.electrons.predict import predict_observables

        pred = predict_observables(self.model, self.atoms, grid_shape=self.grid_shape,
                                   chunk_points=self.chunk_points, scheduler=self.scheduler)
        self.prediction = pred
        self.results = {"energy": pred.total_energy_ev, "free_energy": pred.total_energy_ev,
                        "band_energy": pred.band_energy_ev, "fermi_level": pred.fermi_ev,
                        "dos": pred.dos, "density": pred.density,
                        "energy_grid": pred.energy_grid_ev}
