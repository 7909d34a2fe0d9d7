"""Synthetic descriptors -> LDOS data with a known exact map (shared by the ML tests)."""

import numpy as np


def synthetic_ldos(n: int, n_features: int = 6, n_energies: int = 24, seed: int = 0):
    """Gaussian 'LDOS' peaks whose centre and height are smooth functions of the descriptors.

    Returns x (n, n_features), y (n, n_energies), energies (n_energies,).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    energies = np.linspace(-3.0, 3.0, n_energies)
    centre = np.tanh(x[:, 0] + 0.5 * x[:, 1])[:, None]
    height = (1.0 + 0.3 * np.sin(x[:, 2]))[:, None]
    y = 0.05 * height * np.exp(-((energies[None, :] - centre) ** 2) / 0.8)
    return x, y, energies
