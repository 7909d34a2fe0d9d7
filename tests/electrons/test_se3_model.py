"""SE(3)-equivariant LDOS model: dense-hydrogen boxes, invariance, training, persistence."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("e3nn")

from ase import Atoms  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from matterflow.core.errors import InputError  # noqa: E402
from matterflow.electrons.equivariant import NeighbourParams, Se3LdosModel, neighbour_descriptors  # noqa: E402
from matterflow.electrons.hydrogen import hydrogen_box  # noqa: E402
from matterflow.electrons.model import LdosSetup, model_from_bytes  # noqa: E402

GRID = (6, 6, 6)
NB = NeighbourParams(cutoff=2.5, max_neighbours=12)


def _box(seed=0):
    return hydrogen_box((1, 1, 2), density_g_cm3=0.6, temperature_k=300, phase="solid", seed=seed)


def _target(x):
    """Sum of atom-centred Gaussians at each grid point (an analytic LDOS stand-in)."""
    v = x.reshape(len(x), -1, 4)
    r2 = np.sum(v[..., :3] ** 2, axis=-1)
    g = np.where(v[..., 3] > 0, np.exp(-r2 / 0.5), 0.0).sum(axis=1)
    return np.stack([g, 0.5 * g, g ** 2], axis=1)


def _fitted(epochs=1, dtype="float64"):
    x = neighbour_descriptors(_box(), GRID, NB).reshape(-1, 48)
    return Se3LdosModel(n_scalars=8, hidden_irreps="8x0e+4x1o+2x2e", epochs=epochs, batch_size=64,
                        dtype=dtype, neighbours=NB).fit(x, _target(x)), x


def test_hydrogen_box_density_and_bonds():
    for phase in ("solid", "liquid"):
        a = hydrogen_box((2, 2, 2), density_g_cm3=0.5, temperature_k=200, phase=phase, seed=1)
        rho = a.get_masses().sum() * 1.66053906660e-24 / (a.get_volume() * 1e-24)
        assert rho == pytest.approx(0.5, rel=1e-3)
        n = len(a) // 2
        d = np.array([a.get_distance(i, i + n, mic=True) for i in range(n)])
        np.testing.assert_allclose(d, 0.74, atol=1e-9)
    with pytest.raises(InputError, match="phase"):
        hydrogen_box(phase="gas")


def test_neighbour_lists_match_brute_force_minimum_image():
    a = _box(3)
    x = neighbour_descriptors(a, GRID, NB).reshape(-1, NB.max_neighbours, 4)
    pts = np.indices(GRID).reshape(3, -1).T / np.array(GRID) @ a.cell[:]
    # brute force over 5^3 periodic images
    shifts = np.array(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij")).reshape(3, -1).T @ a.cell[:]
    imgs = (a.positions[None] + shifts[:, None]).reshape(-1, 3)
    for p, row in zip(pts[::17], x[::17], strict=True):
        d = np.sort(np.linalg.norm(imgs - p, axis=1))
        want = d[d < NB.cutoff][:NB.max_neighbours]
        got = np.linalg.norm(row[row[:, 3] > 0, :3], axis=1)
        np.testing.assert_allclose(got, want, atol=1e-9)


def test_se3_invariant_to_rotation_translation_permutation_float64():
    model, x = _fitted()
    ref = model.predict(x).reshape(*GRID, -1)
    a = _box()
    rng = np.random.default_rng(5)
    rot = Rotation.random(random_state=7).as_matrix()
    b = Atoms(a.get_chemical_symbols(), positions=a.positions @ rot.T, cell=a.cell[:] @ rot.T, pbc=True)
    b = b[rng.permutation(len(b))]
    b.positions += b.cell[0] / GRID[0]          # one grid step: the field moves by one point
    got = model.predict(neighbour_descriptors(b, GRID, NB).reshape(-1, 48)).reshape(*GRID, -1)
    got = np.roll(got, -1, axis=0)
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    assert rel <= 1e-5


def test_bispectrum_mlp_invariant_on_same_inputs():
    from matterflow.electrons.descriptors import BispectrumParams, compute_descriptors
    from matterflow.electrons.model import FeedForwardLdosModel

    bp = BispectrumParams(twojmax=4, rcutfac=2.5, radius={"H": 1.0}, weight={"H": 1.0})
    a = _box()
    x = compute_descriptors(a, GRID, bp).reshape(-1, compute_descriptors(a, GRID, bp).shape[-1])
    xn = neighbour_descriptors(a, GRID, NB).reshape(-1, 48)
    mlp = FeedForwardLdosModel((16,), train={"max_epochs": 2, "batch_size": 64}).fit(x, _target(xn))
    ref = mlp.predict(x).reshape(*GRID, -1)
    rot = Rotation.random(random_state=7).as_matrix()
    b = Atoms(a.get_chemical_symbols(), positions=a.positions @ rot.T, cell=a.cell[:] @ rot.T, pbc=True)
    b = b[np.random.default_rng(5).permutation(len(b))]
    b.positions += b.cell[0] / GRID[0]
    xb = compute_descriptors(b, GRID, bp)
    got = np.roll(mlp.predict(xb.reshape(-1, xb.shape[-1])).reshape(*GRID, -1), -1, axis=0)
    assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-4   # float32 network


def test_se3_training_lowers_error_and_round_trips(tmp_path):
    x = neighbour_descriptors(_box(), GRID, NB).reshape(-1, 48)
    y = _target(x)
    m0 = Se3LdosModel(n_scalars=8, hidden_irreps="8x0e+4x1o", epochs=1, batch_size=32,
                      neighbours=NB).fit(x, y)
    m = Se3LdosModel(n_scalars=8, hidden_irreps="8x0e+4x1o", epochs=6, batch_size=32,
                     neighbours=NB).fit(x, y)
    e0 = np.abs(m0.predict(x) - y).mean()
    e = np.abs(m.predict(x) - y).mean()
    assert e < e0
    m.setup = LdosSetup(energy_grid_ev=(0.0, 1.0, 2.0), descriptor_kind="neighbours",
                        descriptor_params=NB.model_dump(mode="json"))
    back = model_from_bytes(m.to_bytes())
    np.testing.assert_allclose(back.predict(x), m.predict(x), rtol=1e-6, atol=1e-9)


def test_se3_bad_inputs():
    model, x = _fitted()
    with pytest.raises(InputError, match="columns"):
        model.predict(x[:, :40])
    bad = x.copy().reshape(len(x), -1, 4)
    bad[0, 0, 3] = 5
    with pytest.raises(InputError, match="species"):
        model.predict(bad.reshape(len(x), -1))
    with pytest.raises(InputError, match="NeighbourParams.species"):
        neighbour_descriptors(Atoms("He", cell=np.eye(3) * 3, pbc=True), GRID, NB)


def test_se3_killed_training_resumes_to_the_same_weights(tmp_path):
    x = neighbour_descriptors(_box(), GRID, NB).reshape(-1, 48)
    y = _target(x)

    def model(epochs):
        return Se3LdosModel(n_scalars=8, hidden_irreps="8x0e+4x1o", epochs=epochs, batch_size=64,
                            dtype="float64", neighbours=NB)

    whole = model(3).fit(x, y)
    def kill(epoch, loss):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):                 # killed after epoch 2, its checkpoint written
        model(3).fit(x, y, checkpoint_dir=tmp_path, on_epoch=kill)
    resumed = model(3).fit(x, y, checkpoint_dir=tmp_path)
    assert resumed.history_.resumed_from_epoch == 1
    assert len(resumed.history_.val_loss) == 3
    np.testing.assert_allclose(resumed.predict(x), whole.predict(x), rtol=1e-10, atol=1e-12)


def _gauss_density(x):
    """An analytic density stand-in: atom-centred Gaussians of width 0.6 Å (not the model's 1s baseline)."""
    v = x.reshape(len(x), -1, 4)
    r2 = np.sum(v[..., :3] ** 2, axis=-1)
    return np.where(v[..., 3] > 0, np.exp(-r2 / 0.36), 0.0).sum(axis=1)


def test_se3_density_head_invariant_float64_and_needs_density():
    x = neighbour_descriptors(_box(), GRID, NB).reshape(-1, 48)
    m = Se3LdosModel(n_scalars=8, hidden_irreps="8x0e+4x1o+2x2e", epochs=1, batch_size=64, dtype="float64",
                     neighbours=NB, density_head=True, point_radial=True).fit(x, _target(x),
                                                                              density=_gauss_density(x))
    ldos, ref = m.predict_ldos_and_density(x)
    np.testing.assert_allclose(ldos, m.predict(x), rtol=1e-12, atol=1e-14)   # same LDOS as predict
    a = _box()
    rot = Rotation.random(random_state=3).as_matrix()
    b = Atoms(a.get_chemical_symbols(), positions=a.positions @ rot.T, cell=a.cell[:] @ rot.T, pbc=True)
    b = b[np.random.default_rng(2).permutation(len(b))]
    b.positions += b.cell[0] / GRID[0]
    got = np.roll(m.predict_density(neighbour_descriptors(b, GRID, NB).reshape(-1, 48)).reshape(GRID), -1, axis=0)
    assert np.abs(got - ref.reshape(GRID)).max() / np.abs(ref).max() <= 1e-5   # measured 2e-14
    got_l = np.roll(m.predict(neighbour_descriptors(b, GRID, NB).reshape(-1, 48)).reshape(*GRID, -1), -1, axis=0)
    assert np.abs(got_l - ldos.reshape(*GRID, -1)).max() / np.abs(ldos).max() <= 1e-5   # point_radial too
    with pytest.raises(InputError, match="density"):
        Se3LdosModel(epochs=1, neighbours=NB, density_head=True).fit(x, _target(x))
    with pytest.raises(InputError, match="no density head"):
        _fitted()[0].predict_density(x)
    back = model_from_bytes(m.to_bytes())
    np.testing.assert_allclose(back.predict_density(x), m.predict_density(x), rtol=1e-10)


def test_se3_density_head_learns_an_analytic_density_on_held_out_points():
    """Fit on one box, test on another: the density head beats the mean and its own baseline."""
    from matterflow.electrons.equivariant import neighbour_sad_density

    x, xt = (neighbour_descriptors(_box(s), GRID, NB).reshape(-1, 48) for s in (0, 4))
    m = Se3LdosModel(n_scalars=8, hidden_irreps="8x0e+4x1o", epochs=8, batch_size=32, learning_rate=5e-3,
                     neighbours=NB, density_head=True).fit(x, _target(x), density=_gauss_density(x))
    ref = _gauss_density(xt)
    err = np.abs(m.predict_density(xt) - ref).mean()
    base = np.abs(neighbour_sad_density(xt, ("H",)) - ref).mean()
    assert err < 0.5 * base and err < 0.5 * np.abs(ref - ref.mean()).mean(), (err, base)
