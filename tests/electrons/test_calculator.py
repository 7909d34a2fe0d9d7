"""ASE calculator on an LDOS model: energy and extra results; other properties refused clearly."""

import numpy as np
import pytest
from ase.calculators.calculator import PropertyNotImplementedError
from test_predict import ENERGIES, _al, _free_electron_ldos, _model

from matterflow.core.errors import InputError
from matterflow.electrons import Calculator
from matterflow.electrons.predict import predict_observables


def test_calculator_energy_and_results(tmp_path):
    m = _model(constant_ldos=_free_electron_ldos(ENERGIES))
    path = m.save(tmp_path / "model.pt")
    atoms = _al()
    atoms.calc = Calculator(model=path, scheduler="synchronous")
    e = atoms.get_potential_energy()
    ref = predict_observables(m, _al(), scheduler="synchronous")
    assert e == pytest.approx(ref.total_energy_ev, abs=1e-6)
    r = atoms.calc.results
    assert r["band_energy"] == pytest.approx(ref.band_energy_ev)
    assert r["dos"].shape == ENERGIES.shape and r["density"].shape == (8, 8, 8)
    assert atoms.calc.get_property("fermi_level") == pytest.approx(ref.fermi_ev)
    # moving an atom triggers a new calculation
    atoms.positions[0, 0] += 0.1
    assert atoms.get_potential_energy() != e


def test_unsupported_properties_raise_clearly():
    atoms = _al()
    atoms.calc = Calculator(model=_model())
    with pytest.raises(PropertyNotImplementedError, match="cannot compute 'forces'.*derivatives"):
        atoms.get_forces()
    with pytest.raises(PropertyNotImplementedError, match="stress"):
        atoms.get_stress()
    with pytest.raises(InputError, match="LdosModel"):
        Calculator(model=np.zeros(3))
