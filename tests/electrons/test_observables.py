"""Observables from an LDOS, checked against analytic results and PySCF/libxc (no DFT run)."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from matterflow.core.errors import InputError
from matterflow.electrons import observables as ob

KB = ob.KB_EV


def _fermi(e, mu, t):
    return 1.0 / (np.exp((e - mu) / (KB * t)) + 1.0)


def _broadened_dos(levels, weights, egrid, sigma):
    x = (egrid[None, :] - levels[:, None]) / sigma
    return (weights[:, None] * np.exp(-0.5 * x * x) / (sigma * np.sqrt(2 * np.pi))).sum(0)


@pytest.fixture(scope="module")
def levels():
    rng = np.random.default_rng(3)
    return np.sort(rng.uniform(-3.0, 3.0, 400)), np.full(400, 2.0 / 40)  # 20 electrons


@pytest.mark.parametrize("sigma,step,tol_mev", [(0.02, 0.01, 0.3), (0.05, 0.025, 1.5)])
def test_band_energy_and_count_match_exact_sums_over_levels(levels, sigma, step, tol_mev):
    eps, w = levels
    t = 298.0
    egrid = np.arange(-5, 5, step)
    dos = _broadened_dos(eps, w, egrid, sigma)
    mu_exact = 0.3
    n_el = float(np.sum(w * _fermi(eps, mu_exact, t)))
    mu = ob.fermi_level(dos, egrid, n_el, t, ldos_smearing_ev=sigma)
    eb = ob.band_energy(dos, egrid, mu_exact, t, ldos_smearing_ev=sigma)
    eb_exact = float(np.sum(w * eps * _fermi(eps, mu_exact, t)))
    assert abs(mu - mu_exact) < 5e-3
    assert abs(eb - eb_exact) * 1000 < tol_mev  # meV for the 20 electrons
    # the broadening correction reduces the error
    eb0 = ob.band_energy(dos, egrid, mu_exact, t, ldos_smearing_ev=0.0)
    assert abs(eb - eb_exact) < abs(eb0 - eb_exact)


def test_entropy_matches_fermi_dirac_entropy(levels):
    eps, w = levels
    t = 933.0
    egrid = np.arange(-5, 5, 0.01)
    dos = _broadened_dos(eps, w, egrid, 0.02)
    f = _fermi(eps, 0.1, t)
    from scipy.special import xlogy

    s_exact = -np.sum(w * (xlogy(f, f) + xlogy(1 - f, 1 - f)))
    ts = ob.entropy_energy(dos, egrid, 0.1, t, ldos_smearing_ev=0.02)
    assert ts == pytest.approx(KB * t * s_exact, rel=2e-3)


def test_density_from_ldos_is_chunk_additive_and_dos_sums():
    rng = np.random.default_rng(0)
    egrid = np.linspace(-2, 2, 81)
    ldos = rng.random((4, 5, 6, 81))
    dv = 0.3
    dos_full = ob.dos_from_ldos(ldos, dv)
    flat = ldos.reshape(-1, 81)
    dos_chunks = sum(ob.dos_from_ldos(flat[i:i + 17], dv) for i in range(0, len(flat), 17))
    np.testing.assert_allclose(dos_chunks, dos_full, rtol=1e-12)
    dens = ob.density_from_ldos(ldos, egrid, 0.1, 500.0, ldos_smearing_ev=0.05)
    dens_chunk = ob.density_from_ldos(flat[:50], egrid, 0.1, 500.0, ldos_smearing_ev=0.05)
    np.testing.assert_allclose(dens.reshape(-1)[:50], dens_chunk, rtol=1e-12)
    # integral of the density equals the occupation-weighted DOS
    w = ob.occupation_weights(egrid, 0.1, 500.0, ldos_smearing_ev=0.05)
    assert dens.sum() * dv == pytest.approx(w @ dos_full, rel=1e-12)


def test_hartree_energy_of_a_cosine_density_is_analytic():
    a = 5.0
    atoms = Atoms("H", cell=np.eye(3) * a, pbc=True)
    n = (24, 20, 16)
    x = np.arange(n[0]) / n[0]
    amp = 0.01  # e/Å³
    dens = 0.05 + amp * np.cos(2 * np.pi * 2 * x)[:, None, None] * np.ones(n)
    g = 2 * np.pi * 2 / a  # 1/Å
    vol = a**3
    # E_H = (1/2) int v n = pi * V * A^2 / G^2 (Gaussian units; e^2 = Hartree * Bohr)
    exact = np.pi * vol * amp**2 / g**2 * ob.HARTREE_EV * ob.BOHR_A
    assert ob.hartree_energy(dens, atoms) == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("xc,code", [("lda,pz", "lda,pz"), ("lda,vwn", "lda,vwn")])
def test_lda_matches_libxc(xc, code):
    from pyscf.dft import libxc

    rho = np.logspace(-6, 1.5, 300)
    exc, vxc = libxc.eval_xc(code, rho, spin=0, deriv=1)[:2]
    eps, v = ob.lda_xc(rho, xc)
    np.testing.assert_allclose(eps, exc, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(v, vxc[0], rtol=1e-7, atol=1e-12)


def test_ewald_matches_pyscf_and_madelung():
    from pyscf.pbc import gto

    rng = np.random.default_rng(1)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
    cell = gto.Cell(atom=[("Al", p) for p in atoms.positions], a=atoms.cell[:], unit="A",
                    basis="gth-szv", pseudo="gth-pade", verbose=0).build()
    assert ob.ewald_energy(atoms) == pytest.approx(cell.ewald() * ob.HARTREE_EV, abs=1e-8)
    # simple cubic lattice of unit charges in a neutralising background:
    # E = -alpha/(2 a), alpha = 2.8372974794 (Madelung constant, jellium-referenced)
    a = 3.0
    sc = Atoms("H", cell=np.eye(3) * a, pbc=True)
    e = ob.ewald_energy(sc, np.array([1.0]))
    assert e == pytest.approx(-2.8372974794 / (2 * a / ob.BOHR_A) * ob.HARTREE_EV, rel=1e-9)


def test_bad_inputs_name_the_field():
    egrid = np.linspace(-2, 2, 41)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    ldos = np.ones((2, 2, 2, 41)) * 0.01
    with pytest.raises(InputError, match="energy_grid_ev.*uniform"):
        ob.fermi_level(np.ones(41), np.r_[egrid[:-1], 5.0], 1.0, 300.0)
    with pytest.raises(InputError, match="energy_grid_ev.*Fermi level"):
        ob.fermi_level(np.ones(41), egrid, 1000.0, 300.0)
    with pytest.raises(InputError, match="ldos.*grid_shape"):
        ob.observables_from_ldos(ldos.reshape(-1, 41), egrid, atoms, grid_shape=(3, 3, 3),
                                 temperature_k=300, ldos_smearing_ev=0.05)
    bad = ldos.copy()
    bad[0, 0, 0, 3] = np.nan
    with pytest.raises(InputError, match="ldos: contains NaN"):
        ob.observables_from_ldos(bad, egrid, atoms, temperature_k=300, ldos_smearing_ev=0.05)
    with pytest.raises(InputError, match="unknown species.*Xx|unknown species"):
        ob.valence_charges(Atoms("Au", cell=np.eye(3) * 3, pbc=True))
    with pytest.raises(InputError, match="ldos: energy axis"):
        ob.observables_from_ldos(ldos[..., :40], egrid, atoms, temperature_k=300,
                                 ldos_smearing_ev=0.05)


def test_wide_ldos_broadening_warns(levels):
    from matterflow.core.errors import MatterflowWarning

    eps, w = levels
    egrid = np.arange(-5, 5, 0.1)
    dos = _broadened_dos(eps, w, egrid, 0.3)
    with pytest.warns(MatterflowWarning, match="more than 3 kT"):
        ob.fermi_level(dos, egrid, 10.0, 298.0, ldos_smearing_ev=0.3)
