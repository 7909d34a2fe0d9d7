"""PySCF DFT snapshots and the total energy from their own LDOS (the consistency check).

The reference is PySCF: its SCF free energy, its Hartree and XC energies
(``scf_summary``) and its Ewald energy. The observables code never calls PySCF.
"""

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.electrons import observables as ob
from matterflow.electrons.dft import run_dft
from matterflow.electrons.dft_tasks import DftParams, energy_grid
from matterflow.electrons.structures import aluminium_supercell, debye_msd_a2

GRID = energy_grid(DftParams())  # the defaults: -4.5 to 11 eV, step 0.05 eV


@pytest.fixture(scope="module", params=[298.0, 933.0], ids=["298K", "933K"])
def snapshot(request):
    t = request.param
    atoms = aluminium_supercell(1, t, seed=7)
    return run_dft(atoms, kpts=(2, 2, 2), mesh=(10, 10, 10), electronic_temperature_k=t,
                   energy_grid_ev=GRID, ldos_smearing_ev=0.05, conv_tol_ha=1e-9)


def test_snapshot_contents(snapshot):
    s = snapshot
    assert s.ldos.shape == (10, 10, 10, len(GRID))
    # the coarse 10^3 grid integrates the density to ~3e-5 relative (12.0000 at 12^3)
    assert s.density.sum() * s.voxel_volume_a3 == pytest.approx(12.0, abs=2e-3)
    assert s.kweights.sum() == pytest.approx(1.0)
    assert s.eigenvalues_ev.shape == (8, 16)
    # band energy from eigenvalues and occupations (PySCF's mo_occ) is Fermi-Dirac at T
    f = 2 / (np.exp((s.eigenvalues_ev - s.fermi_ev) / (ob.KB_EV * s.electronic_temperature_k)) + 1)
    assert np.sum(s.kweights[:, None] * f) == pytest.approx(12.0, abs=1e-8)
    assert np.sum(s.kweights[:, None] * f * s.eigenvalues_ev) == pytest.approx(s.band_energy_ev,
                                                                               abs=1e-6)


def test_occupied_bandwidth_is_free_electron_like(snapshot):
    # Al is nearly free-electron: E_F - E_bottom = hbar^2 (3 pi^2 n)^(2/3) / 2m = 11.7 eV
    # for n = 3 electrons per 16.6 Å^3 (measured 10.6 eV, LDA ~11.1 eV); coarse k-grid, small
    # basis: within 10 %
    n = 12 / snapshot.atoms.get_volume()
    free = 3.80998 * (3 * np.pi**2 * n) ** (2 / 3)  # hbar^2/2m = 3.80998 eV Å^2
    assert free == pytest.approx(11.7, abs=0.1)
    width = snapshot.fermi_ev - snapshot.eigenvalues_ev.min()
    assert width == pytest.approx(free, rel=0.1)


def test_double_counting_terms_match_pyscf(snapshot):
    s = snapshot
    terms = s.meta["pyscf_terms_ev"]
    assert ob.hartree_energy(s.density, s.atoms) == pytest.approx(terms["coul"], abs=1e-7)
    assert ob.xc_energy(s.density, s.atoms, "lda,pz")[0] == pytest.approx(terms["exc"], abs=1e-7)
    assert ob.ewald_energy(s.atoms) == pytest.approx(s.meta["ewald_energy_ev"], abs=1e-7)
    # eigenvalue route: band energy - double counting + Ewald - TS == PySCF free energy
    e, _ = ob.total_energy(s.density, s.atoms, band_energy_ev=s.band_energy_ev,
                           entropy_ts_ev=s.meta["entropy_ts_ev"])
    assert abs(e - s.total_energy_ev) / s.n_atoms < 1e-5  # eV/atom (SCF convergence)


def test_total_energy_from_own_ldos_within_1mev_per_atom(snapshot):
    s = snapshot
    obs = ob.observables_from_ldos(s.ldos, s.energy_grid_ev, s.atoms,
                                   temperature_k=s.electronic_temperature_k,
                                   ldos_smearing_ev=s.ldos_smearing_ev)
    n = s.n_atoms
    d_tot = (obs.total_energy_ev - s.total_energy_ev) * 1000 / n
    d_band = (obs.band_energy_ev - s.band_energy_ev) * 1000 / n
    rel = np.abs(obs.density - s.density).sum() / s.density.sum()
    print(f"T = {s.electronic_temperature_k} K: total {d_tot:+.3f} meV/atom, band {d_band:+.3f} "
          f"meV/atom, density {rel * 100:.3f} %")
    assert abs(d_tot) < 1.5, f"total energy off by {d_tot:.3f} meV/atom"
    assert abs(d_band) < 3.0, f"band energy off by {d_band:.3f} meV/atom"
    assert abs(obs.fermi_ev - s.fermi_ev) < 0.01
    assert rel < 0.003


def test_thermal_displacements_follow_debye_model():
    # Debye-Waller factor of Al at room temperature: B = 0.85 Å^2 -> <u_x^2> = B / (8 pi^2);
    # the Debye model with the calorimetric 428 K gives 14 % less (X-ray Theta_DW ~ 395 K)
    assert debye_msd_a2(298.0, 26.98, 428.0) == pytest.approx(0.85 / (8 * np.pi**2), rel=0.2)
    from ase.build import bulk

    ideal = bulk("Al", "fcc", a=4.05, cubic=True).repeat(3)
    msd = []
    for seed in range(4):
        atoms = aluminium_supercell(3, 933.0, seed=seed, thermal="independent")
        assert len(atoms) == 108
        d = atoms.positions - ideal.positions
        d -= np.round(d @ np.linalg.inv(atoms.cell[:])) @ atoms.cell[:]
        msd.append(np.mean(d**2))
    assert np.mean(msd) == pytest.approx(debye_msd_a2(933.0, 26.98, 428.0), rel=0.1)


def test_atoms_outside_the_cell_are_wrapped_and_bad_inputs_rejected():
    from ase import Atoms

    atoms = aluminium_supercell(1, 298.0, seed=0)
    moved = atoms.copy()
    moved.positions[0] += atoms.cell[0] * 2
    from matterflow.electrons.dft import _build_cell
    wrapped, _ = _build_cell(moved, basis="gth-szv", pseudo="gth-pade", mesh=(6, 6, 6))
    np.testing.assert_allclose(wrapped.positions, atoms.positions, atol=1e-9)
    with pytest.raises(InputError, match="species"):
        run_dft(Atoms("Xe2", positions=[[0, 0, 0], [1.5, 1.5, 1.5]], cell=np.eye(3) * 4, pbc=True),
                basis="gth-szv", mesh=(6, 6, 6))
    bad = atoms.copy()
    bad.positions[1, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        run_dft(bad)
    with pytest.raises(InputError, match="xc"):
        run_dft(atoms, xc="pbe")


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [298.0, 933.0])
def test_total_energy_from_own_ldos_8_atoms(temperature):
    atoms = aluminium_supercell((2, 1, 1), temperature, seed=11)
    s = run_dft(atoms, kpts=(2, 2, 2), mesh=(24, 12, 12), electronic_temperature_k=temperature,
                energy_grid_ev=GRID, ldos_smearing_ev=0.05)
    obs = ob.observables_from_ldos(s.ldos, s.energy_grid_ev, s.atoms, temperature_k=temperature,
                                   ldos_smearing_ev=0.05)
    d_tot = (obs.total_energy_ev - s.total_energy_ev) * 1000 / s.n_atoms
    print(f"8 atoms, T = {temperature} K: total {d_tot:+.3f} meV/atom")
    assert abs(d_tot) < 1.0


def test_no_convergence_is_a_compute_error():
    from matterflow.core.errors import ComputeError

    atoms = aluminium_supercell(1, 298.0, seed=0)
    with pytest.raises(ComputeError, match="did not converge in 2 cycles, also after annealing"):
        run_dft(atoms, kpts=(1, 1, 1), mesh=(6, 6, 6), max_cycle=2)
