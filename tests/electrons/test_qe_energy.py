"""QE-made MALA snapshots (Be2, mala-project/test-data): readers, and QE's energy terms without QE.

The reference is Quantum ESPRESSO 6.6's own printed terms in ``Be_snapshot0.out``; the
density, LDOS and DOS are MALA's arrays of the same calculation (tests/electrons/data/mala_be2,
BSD-3, see SOURCE.md there).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.core.errors import InputError
from matterflow.electrons.mala_qe import (
    LdosWidthWarning,
    _eig_dos,
    check_qe_matches,
    fit_ldos_broadening,
    load_mala_qe,
    qe_observables,
)
from matterflow.electrons.qe import RYDBERG_EV, read_pp_ldos_input, read_pw_input, read_pw_output
from matterflow.electrons.qe_energy import (
    FUNCTIONALS,
    band_terms_from_eigenvalues,
    fermi_from_eigenvalues,
    libxc_name,
    qe_energy_terms,
)
from matterflow.electrons.upf import read_upf

D = Path(__file__).parent / "data" / "mala_be2"
OUT, UPF = D / "Be_snapshot0.out", D / "Be.pbe-n-rrkjus_psl.1.0.0.UPF"
runner = CliRunner()


@pytest.fixture(scope="module")
def snap():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LdosWidthWarning)
        return load_mala_qe(D / "Be_snapshot0.out.npy", OUT, density_path=D / "Be_snapshot0.dens.npy")


def test_upf_fields_and_atomic_charge():
    pp = read_upf(UPF, element="Be")
    assert pp.z_valence == 2.0 and pp.functional == "PBE" and pp.has_core_correction
    assert len(pp.r) == len(pp.rab) == len(pp.core_density) == 1041
    # the atomic valence density integrates to the valence charge (independent of the reader)
    assert np.sum(pp.atomic_density * pp.rab) == pytest.approx(2.0, abs=2e-3)


def test_upf_bad_files(tmp_path):
    with pytest.raises(InputError, match="PP_HEADER.element"):
        read_upf(UPF, element="Al")
    (tmp_path / "v1.UPF").write_text("<PP_INFO>\n</PP_INFO>\n<PP_HEADER>\n 0 Version\n</PP_HEADER>\n")
    with pytest.raises(InputError, match="UPF version 1"):
        read_upf(tmp_path / "v1.UPF")
    (tmp_path / "broken.UPF").write_text(UPF.read_text()[:30000])
    with pytest.raises(InputError, match=r"broken.UPF: UPF file does not parse"):
        read_upf(tmp_path / "broken.UPF")
    text = UPF.read_text().replace('z_valence="2.000000000000e0"', 'z_valence="two"')
    (tmp_path / "z.UPF").write_text(text)
    with pytest.raises(InputError, match=r"z.UPF: UPF field PP_HEADER.z_valence"):
        read_upf(tmp_path / "z.UPF")
    with pytest.raises(InputError, match="not found"):
        read_upf(tmp_path / "none.UPF")


def test_pw_output_and_inputs():
    o = read_pw_output(OUT)
    cell_in = np.array([[2.25982586776780, 0, 0], [-1.12991293388390, 1.95706569713361, 0],
                        [0, 0, 3.56987856087494]])  # CELL_PARAMETERS angstrom of the pw.x input
    np.testing.assert_allclose(o.atoms.cell[:], cell_in, atol=1e-6)
    assert len(o.atoms) == 2 and o.atoms.get_chemical_symbols() == ["Be", "Be"]
    assert (o.n_electrons, o.functional, o.smearing, o.fft_grid) == (4.0, "PBE", "fermi-dirac",
                                                                      (18, 18, 27))
    assert o.eigenvalues_ev.shape == (512, 4) and o.kweights.sum() == pytest.approx(1.0)
    assert o.terms_ev["ewald"] == pytest.approx(-6.13837306 * RYDBERG_EV, abs=1e-7)
    assert o.pseudopotentials == {"Be": UPF.name}
    pin = read_pw_input(D / "recreate_data" / "Be.pw.scf.in")
    assert pin.degauss_ev == pytest.approx(0.0018874 * RYDBERG_EV) and pin.smearing == "fermi-dirac"
    pp = read_pp_ldos_input(D / "recreate_data" / "Be.pp.ldos.in")
    assert (pp["emin_ev"], pp["delta_e_ev"], pp["degauss_ldos_ev"]) == (-5.0, 2.5, 5.0)


def test_pp_ldos_width_is_degauss_over_sqrt2():
    """MALA's DOS file is the eigenvalue DOS broadened by exp(-x^2), x = dE/degauss_ldos."""
    o = read_pw_output(OUT)
    sigma = read_pp_ldos_input(D / "recreate_data" / "Be.pp.ldos.in")["sigma_ev"]
    e = -5 + 2.5 * np.arange(11)
    np.testing.assert_allclose(_eig_dos(o.eigenvalues_ev, o.kweights, e, sigma),
                               np.load(D / "Be_snapshot0.dos.npy"), atol=6e-5)


def test_qe_terms_from_dft_density_within_1mev_per_atom():
    o = read_pw_output(OUT)
    pp = read_upf(UPF, element="Be")
    dens = np.load(D / "Be_snapshot0.dens.npy")[..., 0]
    deg = read_pw_input(D / "recreate_data" / "Be.pw.scf.in").degauss_ev
    mu = fermi_from_eigenvalues(o.eigenvalues_ev, o.kweights, 4.0, deg, "fermi-dirac")
    assert mu == pytest.approx(o.fermi_ev, abs=1e-3)  # QE prints 4 decimals
    band, mts = band_terms_from_eigenvalues(o.eigenvalues_ev, o.kweights, mu, deg, "fermi-dirac")
    # QE stopped its SCF after one iteration: its one-electron term uses the starting
    # (atomic) density's potential
    t = qe_energy_terms(dens, o.atoms, {"Be": pp}, functional="PBE", ecutrho_ev=o.ecutrho_ev,
                        band_energy_ev=band, minus_ts_ev=mts, input_density="atomic",
                        n_electrons=4.0).terms_ev
    for k in ("one_electron", "hartree", "xc", "ewald", "minus_ts", "total"):
        assert abs(t[k] - o.terms_ev[k]) * 1000 / 2 < 0.1, (k, t[k], o.terms_ev[k])
    # the self-consistent double counting is what a converged SCF would give: here it is not QE's
    t_self = qe_energy_terms(dens, o.atoms, {"Be": pp}, functional="PBE", ecutrho_ev=o.ecutrho_ev,
                             band_energy_ev=band, minus_ts_ev=mts).terms_ev
    assert abs(t_self["one_electron"] - o.terms_ev["one_electron"]) * 1000 / 2 > 10
    assert t_self["xc"] == t["xc"] and t_self["hartree"] == t["hartree"]
    # without the core charge the XC energy misses QE's by far more than 1 meV/atom
    no_core = {"Be": type(pp)(**{**pp.__dict__, "core_density": None})}
    t_nc = qe_energy_terms(dens, o.atoms, no_core, functional="PBE", ecutrho_ev=o.ecutrho_ev,
                           band_energy_ev=band, minus_ts_ev=mts).terms_ev
    assert abs(t_nc["xc"] - o.terms_ev["xc"]) * 1000 / 2 > 100


def test_functionals():
    assert libxc_name("SLA PW PBX PBC") == libxc_name("PBE") == FUNCTIONALS["PBE"]
    assert libxc_name("SLA PZ NOGX NOGC") == FUNCTIONALS["LDA-PZ"]
    with pytest.raises(InputError, match=r"B3LYP.*supported: LDA-PZ, LDA-PW, PBE, PBESOL"):
        libxc_name("B3LYP")


def test_load_mala_qe_takes_qe_values(snap):
    assert snap.n_electrons == 4.0
    assert snap.electronic_temperature_k == pytest.approx(0.0018874 * RYDBERG_EV / 8.617333262e-5)
    assert snap.ldos_smearing_ev == pytest.approx(5.0 / np.sqrt(2))
    np.testing.assert_allclose(snap.energy_grid_ev, -5 + 2.5 * np.arange(11))
    assert snap.meta["scf_iterations"] == 1 and snap.meta["valence"] == {"Be": 2.0}
    # the LDOS array itself is broadened much more than its pp.x input says (measured)
    sigma, _ = fit_ldos_broadening(snap)
    assert 7.5 < sigma < 9.0
    over = load_mala_qe(D / "Be_snapshot0.out.npy", OUT, electronic_temperature_k=300.0,
                        ldos_smearing_ev=1.0, n_electrons=4.0, energy_offset_ev=-5.0,
                        energy_spacing_ev=2.5)
    assert (over.electronic_temperature_k, over.ldos_smearing_ev) == (300.0, 1.0)


def test_qe_observables_terms(snap):
    res = qe_observables(snap)
    assert res["input_density"] == "atomic"
    for k, row in res["dft_density"]["terms"].items():
        if row["reference_ev"] is not None:
            assert abs(row["difference_mev_per_atom"]) < 1.0, k
    assert "ldos" in res and "floor" in res and res["floor"]["sigma_ev"] == snap.ldos_smearing_ev


def test_bad_qe_inputs(tmp_path, snap):
    o = read_pw_output(OUT)
    np.save(tmp_path / "ldos.npy", np.zeros((18, 18, 26, 11), np.float32))
    with pytest.raises(InputError, match=r"dense FFT grid \(18, 18, 27\)"):
        load_mala_qe(tmp_path / "ldos.npy", OUT)
    with pytest.raises(InputError, match="3 atoms, but"):
        check_qe_matches(o, atoms=o.atoms.repeat((1, 1, 1)) + o.atoms[:1])
    # MALA's info.json beside the arrays names other atoms than the QE output
    info = json.loads((D / "Be_snapshot0.info.json").read_text())
    info["atoms"]["numbers"].append(4)
    info["atoms"]["positions"].append([0.0, 0.0, 0.0])
    np.save(tmp_path / "Be_snapshot0.out.npy", np.load(D / "Be_snapshot0.out.npy"))
    (tmp_path / "Be_snapshot0.info.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match=r"info.json: 3 atoms, but .*Be_snapshot0.out has 2"):
        load_mala_qe(tmp_path / "Be_snapshot0.out.npy", OUT)
    info["atoms"]["numbers"].pop()
    info["atoms"]["positions"].pop()
    info["atoms"]["cell"][2][2] *= 1.01
    (tmp_path / "Be_snapshot0.info.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="cell differs"):
        load_mala_qe(tmp_path / "Be_snapshot0.out.npy", OUT)
    # a QE output whose cell is 2 % larger than the one the density was made on
    bad = OUT.read_text().replace("celldm(1)=   4.270452", "celldm(1)=   4.355861")
    (tmp_path / "Be.out").write_text(bad)
    (tmp_path / "recreate_data").mkdir()
    for f in (D / "recreate_data").iterdir():
        (tmp_path / "recreate_data" / f.name).write_text(f.read_text())
    (tmp_path / UPF.name).write_text(UPF.read_text())
    with pytest.raises(InputError, match="cell differs"):  # MALA's info.json says so first
        load_mala_qe(D / "Be_snapshot0.out.npy", tmp_path / "Be.out")
    (tmp_path / "Be_snapshot0.info.json").unlink()
    with pytest.raises(InputError, match="density integrates to"):
        load_mala_qe(tmp_path / "Be_snapshot0.out.npy", tmp_path / "Be.out",
                     density_path=D / "Be_snapshot0.dens.npy")
    # a pseudopotential for another element under the name QE used
    (tmp_path / UPF.name).write_text(UPF.read_text().replace('element="Be"', 'element="B"'))
    with pytest.raises(InputError, match="PP_HEADER.element is 'B'"):
        load_mala_qe(tmp_path / "Be_snapshot0.out.npy", tmp_path / "Be.out")
    with pytest.raises(InputError, match="not supported"):
        qe_energy_terms(snap.density, snap.atoms, {"Be": read_upf(UPF)}, functional="HSE06",
                        ecutrho_ev=2000.0, band_energy_ev=0.0, minus_ts_ev=0.0)


def test_cli_import_mala_and_observables_json(tmp_path):
    h5, js = tmp_path / "be.h5", tmp_path / "be.json"
    with pytest.warns(LdosWidthWarning, match="8.4"):
        res = runner.invoke(app, ["electrons", "import-mala", str(D / "Be_snapshot0.out.npy"),
                                  str(OUT), "--density", str(D / "Be_snapshot0.dens.npy"), "-o", str(h5)])
    assert res.exit_code == 0, res.output
    assert "297.997 K" in res.output and "3.5355 eV" in res.output
    res = runner.invoke(app, ["electrons", "observables", str(h5), "--json", str(js)])
    assert res.exit_code == 0, res.output
    data = json.loads(js.read_text())
    terms = data["dft_density"]["terms"]
    assert set(terms) >= {"one_electron", "hartree", "xc", "ewald", "minus_ts", "total", "band"}
    assert all(abs(r["difference_mev_per_atom"]) < 1 for r in terms.values()
               if r["reference_ev"] is not None)
    assert data["ldos"]["terms"]["total"]["reference_ev"] == pytest.approx(-5.36812459 * RYDBERG_EV)
    res = runner.invoke(app, ["electrons", "import-mala", str(D / "Be_snapshot0.out.npy"),
                              str(D / "Be_snapshot0.dos.npy"), "-o", str(h5)])
    assert res.exit_code == 2 and "--offset is needed" in res.output


def test_lda_through_libxc_equals_handwritten_pz_and_gga_potential_is_the_derivative():
    """LDA-PZ via libxc against matterflow's own Perdew-Zunger code; the PBE potential
    (which enters the one-electron term) against a finite difference of E_xc."""
    from matterflow.electrons.observables import xc_energy
    from matterflow.electrons.qe_energy import BOHR_A, HARTREE_EV, _cell_bohr, xc_energy_potential

    o = read_pw_output(OUT)
    dens = np.load(D / "Be_snapshot0.dens.npy")[..., 0]
    n, cell = dens * BOHR_A**3, _cell_bohr(o.atoms)
    dv = abs(np.linalg.det(cell)) / n.size
    e_lda, v_lda = xc_energy_potential(n, None, cell, "LDA-PZ")
    e_ref, vn_ref = xc_energy(dens, o.atoms, "lda,pz")
    assert e_lda * HARTREE_EV == pytest.approx(e_ref, rel=1e-9)
    assert np.sum(n * v_lda) * dv * HARTREE_EV == pytest.approx(vn_ref, rel=1e-9)
    core = 0.3 * np.exp(-((np.arange(n.size) % 7) / 3.0)).reshape(n.shape) * n.mean()
    e0, v = xc_energy_potential(n, core, cell, "PBE", ecutrho_ry=o.ecutrho_ev / RYDBERG_EV)
    h = 1e-4
    ep, _ = xc_energy_potential(n * (1 + h), core, cell, "PBE", ecutrho_ry=o.ecutrho_ev / RYDBERG_EV)
    em, _ = xc_energy_potential(n * (1 - h), core, cell, "PBE", ecutrho_ry=o.ecutrho_ev / RYDBERG_EV)
    assert (ep - em) / (2 * h) == pytest.approx(np.sum(n * v) * dv, rel=1e-6)


def test_gaussian_smearing_counts_electrons():
    o = read_pw_output(OUT)
    mu = fermi_from_eigenvalues(o.eigenvalues_ev, o.kweights, 4.0, 0.1, "gaussian")
    from matterflow.electrons.qe_energy import smearing_occupations

    f, _ = smearing_occupations((o.eigenvalues_ev - mu) / 0.1, "gaussian")
    assert np.sum(2 * o.kweights[:, None] * f) == pytest.approx(4.0, abs=1e-9)
    with pytest.raises(InputError, match="supported 'fermi-dirac', 'gaussian'"):
        smearing_occupations(np.zeros(3), "m-p")


def test_spin_polarised_output_refused(tmp_path):
    (tmp_path / "spin.out").write_text(OUT.read_text().replace("End of self-consistent calculation",
                                                               "End of self-consistent calculation\n"
                                                               " ------ SPIN UP ------------"))
    with pytest.raises(InputError, match="spin-polarised"):
        read_pw_output(tmp_path / "spin.out")


def test_observables_json_of_a_non_qe_snapshot(tmp_path):
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.calc = SinglePointCalculator(atoms, energy=-10.0)
    atoms.write(tmp_path / "out.extxyz")
    e = np.linspace(-5, 15, 30)
    np.save(tmp_path / "ldos.npy", 0.01 * np.sqrt(e + 5)[None, None, None, :] * np.ones((4, 4, 4, 1)))
    res = runner.invoke(app, ["electrons", "import-mala", str(tmp_path / "ldos.npy"),
                              str(tmp_path / "out.extxyz"), "--offset", "-5", "--spacing",
                              str(e[1] - e[0]), "--temperature", "298", "--ldos-smearing", "0.05",
                              "-o", str(tmp_path / "s.h5")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["electrons", "observables", str(tmp_path / "s.h5"), "--json",
                              str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "s.json").read_text())  # strict JSON: unknown values are null
    assert data["rows"]["total energy"]["reference_ev"] == -10.0
    assert data["rows"]["band energy"]["reference_ev"] is None and "ewald" in data["terms_ev"]


def test_pw_input_of_another_calculation_refused(tmp_path):
    text = (D / "recreate_data" / "Be.pw.scf.in").read_text()
    (tmp_path / "hot.in").write_text(text.replace("0.0018874", "0.0100000"))
    with pytest.raises(InputError, match="does not round to the 0.0019 Ry"):
        load_mala_qe(D / "Be_snapshot0.out.npy", OUT, pw_input=tmp_path / "hot.in")
    (tmp_path / "nat.in").write_text(text.replace("nat              = 2", "nat              = 4"))
    with pytest.raises(InputError, match="nat = 4"):
        load_mala_qe(D / "Be_snapshot0.out.npy", OUT, pw_input=tmp_path / "nat.in")
    import matterflow.electrons as el

    assert el.load_mala_qe is load_mala_qe
