"""A parametric physics-informed network for the driven 1D Schrödinger equation.

One network ``N_θ(x, t, E₀) → (Re, Im)`` is trained once for a range of field
amplitudes ``E₀ ∈ [e0_min, e0_max]`` of the problem of :mod:`.tdse`
(atomic units). The wave function is built so that the initial condition,
the walls and the field-free limit hold exactly::

    ψ(x, t; E₀) = exp(-i ε₀ t) [ ψ₀(x) + (t/T) (E₀/E_max) (1 − x²/L²) N_θ(x, t, E₀) ]

with ``ψ₀, ε₀`` the ground state of the binding well (from the same grid
solver as the reference, splined in ``x``). Since ``(H₀ − ε₀)ψ₀ = 0`` the
loss needs only the correction ``c = (t/T)(E₀/E_max)(1 − x²/L²) N``; the
residual of ``φ = e^{iε₀t}ψ`` is

    R = i ∂ₜc + ½ ∂ₓ²c − (V − ε₀) c − x E(t) (ψ₀ + c).

Two electrons (singlet, TDKS with exact exchange): ψ₀ is the self-consistent
orbital and R gains ``−v_Hx[φ] c − (v_Hx[φ] − v_Hx[ψ₀]) ψ₀``, the integral
``v_Hx = ∫|φ|² w dx'`` done by quadrature on a randomly shifted uniform grid
of ``_N_QUAD`` points at each sampled time.

Training (:class:`~matterflow.dft1d.pinn_base.ParametricPINN`, shared with the
TDKS PINN): Adam on fresh random collocation points every step (time drawn in
equal strata), with *causal weights* (Wang, Sankaran & Perdikaris 2022):
stratum k weighs ``exp(−ε Σ_{j<k} L_j)``, so late times are learned only
once earlier ones are; then an L-BFGS finish on a fixed point set.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from matterflow.core.errors import InputError
from matterflow.dft1d.pinn_base import ParametricPINN, break_even_queries
from matterflow.dft1d.tdse import TDSESetup, grid, ground_state, setup_of, well_potential

__all__ = ["TDSEPINN", "compare_with_reference", "break_even_queries"]

_PARAM_NAMES = ("potential", "omega0", "charge", "softening", "omega", "t_final", "x_max",
                "n_electrons", "interaction_softening",
                "e0_min", "e0_max", "width", "depth", "n_fourier", "adam_steps", "lbfgs_steps",
                "learning_rate", "batch_size", "n_time_bins", "causal_eps", "seed", "n_threads")


PINN_FORMAT = "matterflow.dft1d.TDSEPINN/2"  # torch.save of tensors + JSON text (pinn_base)
_PINN_FORMAT_1 = "matterflow.dft1d.TDSEPINN/1"  # numpy arrays pickled: --trust-pickle only

_N_QUAD = 64   # x quadrature points per sampled time for the two-electron v_Hx


def _build_net(width: int, depth: int, n_fourier: int):
    import torch
    from torch import nn

    class Net(nn.Module):
        """MLP on (x/L, t/T, scaled E₀), with optional sin/cos(kπx/L) features."""

        def __init__(self) -> None:
            super().__init__()
            self.n_fourier = n_fourier
            n_in = 3 + 2 * n_fourier
            layers: list[nn.Module] = []
            for i in range(depth):
                layers += [nn.Linear(n_in if i == 0 else width, width), nn.Tanh()]
            layers.append(nn.Linear(width, 2))
            self.mlp = nn.Sequential(*layers)
            for m in self.mlp:
                if isinstance(m, nn.Linear):
                    nn.init.xavier_normal_(m.weight)
                    nn.init.zeros_(m.bias)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            if self.n_fourier:
                k = torch.arange(1, self.n_fourier + 1, dtype=z.dtype, device=z.device)
                arg = torch.pi * z[:, :1] * k
                z = torch.cat([z, torch.sin(arg), torch.cos(arg)], dim=1)
            return self.mlp(z)

    return Net()


class TDSEPINN(ParametricPINN):
    """Parametric PINN ``(x, t, E₀) → ψ`` for one electron driven by ``E₀ sin(ωt)``.

    Parameters
    ----------
    potential, omega0, charge, softening, omega, t_final, x_max, n_electrons, interaction_softening
        The problem, as in :class:`~matterflow.dft1d.tdse.TDSESetup` (a.u.). With
        ``n_electrons=2`` (singlet, TDKS with exact exchange) the loss adds
        ``v_Hx[φ] = ∫|φ|² w dx'`` by quadrature on ``n_quad`` points per sampled time.
    e0_min, e0_max : float
        Range of field amplitudes (a.u.) the network is trained for.
    width, depth : int
        Hidden units per layer and number of hidden layers (tanh).
    n_fourier : int
        Number of ``sin/cos(kπx/L)`` input features (0: plain inputs).
    adam_steps, lbfgs_steps : int
        Adam iterations (fresh collocation points each) and L-BFGS iterations.
    learning_rate : float
        Initial Adam step (decays ×0.1 over the run, exponentially).
    batch_size : int
        Collocation points per Adam step (L-BFGS uses 4× as many, fixed).
    n_time_bins : int
        Time strata for the causal weights.
    causal_eps : float
        Causality strength ε (0 switches causal weighting off).
    seed : int
        Seed of the weights and the collocation points.
    n_threads : int
        Torch CPU threads while training (0 keeps torch's setting; default 1, which was
        the fastest on a shared 2-core machine).
    """

    FORMAT = PINN_FORMAT
    _PARAM_NAMES = _PARAM_NAMES
    _BATCH_PARAM = "batch_size"
    _WHAT = "a saved TDSEPINN model (from `matterflow dft1d pinn --save` or dft1d.pinn_train)"

    def __init__(self, potential: str = "harmonic", omega0: float = 1.0, charge: float = 1.0,
                 softening: float = 1.0, omega: float = 1.0, t_final: float = 2.0,
                 x_max: float = 5.0, n_electrons: int = 1,
                 interaction_softening: float = 1.0, e0_min: float = 0.0, e0_max: float = 1.0, width: int = 64,
                 depth: int = 4, n_fourier: int = 4, adam_steps: int = 1000,
                 lbfgs_steps: int = 60, learning_rate: float = 3e-3, batch_size: int = 512,
                 n_time_bins: int = 16, causal_eps: float = 100.0, seed: int = 0,
                 n_threads: int = 1) -> None:
        self.potential = potential
        self.omega0 = omega0
        self.charge = charge
        self.softening = softening
        self.omega = omega
        self.t_final = t_final
        self.x_max = x_max
        self.n_electrons = n_electrons
        self.interaction_softening = interaction_softening
        self.e0_min = e0_min
        self.e0_max = e0_max
        self.width = width
        self.depth = depth
        self.n_fourier = n_fourier
        self.adam_steps = adam_steps
        self.lbfgs_steps = lbfgs_steps
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_time_bins = n_time_bins
        self.causal_eps = causal_eps
        self.seed = seed
        self.n_threads = n_threads

    # ------------------------------------------------------------------ settings
    @property
    def setup(self) -> TDSESetup:
        """The physical problem (validated)."""
        return setup_of(self)

    def _validate(self) -> None:
        self.setup  # noqa: B018  (raises InputError on a bad problem)
        if not (0 <= self.e0_min < self.e0_max):
            raise InputError(f"e0_min, e0_max: need 0 <= e0_min < e0_max; "
                             f"got {self.e0_min!r}, {self.e0_max!r}")
        for name, low in (("width", 1), ("depth", 1), ("adam_steps", 0), ("lbfgs_steps", 0),
                          ("batch_size", 16), ("n_time_bins", 1), ("n_fourier", 0),
                          ("n_threads", 0)):
            if int(getattr(self, name)) < low:
                raise InputError(f"{name}: must be >= {low}; got {getattr(self, name)!r}")
        if not self.learning_rate > 0 or self.causal_eps < 0:
            raise InputError("learning_rate must be > 0 and causal_eps >= 0; got "
                             f"{self.learning_rate!r}, {self.causal_eps!r}")

    def _init_model(self) -> None:
        """Validate, solve for the ground state and build a fresh network."""
        self._validate()
        self._init_ground_state()
        self.model_ = _build_net(int(self.width), int(self.depth), int(self.n_fourier))

    # ------------------------------------------------------------------ ground state
    def _init_ground_state(self) -> None:
        from scipy.interpolate import CubicSpline

        setup = self.setup
        xg = grid(setup.x_max, 1023)
        energy, psi0 = ground_state(setup, xg)
        self.ground_energy_ = energy
        self._psi0_grid = (xg, psi0)
        xs = np.concatenate([[-setup.x_max], xg, [setup.x_max]])
        self._psi0_width = float(np.sqrt(np.sum(xg**2 * psi0**2) / np.sum(psi0**2)))
        self._psi0_spline = CubicSpline(xs, np.concatenate([[0.0], psi0, [0.0]]))

    def psi0(self, x: np.ndarray) -> np.ndarray:
        """Ground state ``ψ₀(x)`` (bohr^-1/2), splined from a 1023-point grid."""
        return self._psi0_spline(np.clip(x, -self.x_max, self.x_max))

    # ------------------------------------------------------------------ the ansatz
    def _correction(self, xte):
        """``c = (t/T)(E₀/E_max)(1−x²/L²) N`` at points ``xte`` (n, 3): (Re, Im) each (n,)."""
        import torch

        x, t, e = xte[:, 0], xte[:, 1], xte[:, 2]
        mid = 0.5 * (self.e0_min + self.e0_max)
        half = 0.5 * (self.e0_max - self.e0_min)
        z = torch.stack([x / self.x_max, 2 * t / self.t_final - 1, (e - mid) / half], dim=1)
        out = self.model_(z)
        gate = (t / self.t_final) * (e / self.e0_max) * (1 - (x / self.x_max) ** 2)
        return gate * out[:, 0], gate * out[:, 1]

    def _residual(self, xte, psi0):
        """Real and imaginary parts of the TDSE residual at points ``xte`` (n, 3)."""
        import torch

        xte = xte.requires_grad_(True)
        a, b = self._correction(xte)
        ga = torch.autograd.grad(a.sum(), xte, create_graph=True)[0]
        gb = torch.autograd.grad(b.sum(), xte, create_graph=True)[0]
        a_xx = torch.autograd.grad(ga[:, 0].sum(), xte, create_graph=True)[0][:, 0]
        b_xx = torch.autograd.grad(gb[:, 0].sum(), xte, create_graph=True)[0][:, 0]
        x, t, e = xte[:, 0], xte[:, 1], xte[:, 2]
        v = self._potential_torch(x) - self.ground_energy_
        xe = x * e * torch.sin(self.omega * t)
        r_re = -gb[:, 1] + 0.5 * a_xx - v * a - xe * (psi0 + a)
        r_im = ga[:, 1] + 0.5 * b_xx - v * b - xe * b
        if self.n_electrons == 2:
            # points come as (n_times, N_QUAD) blocks on a shifted uniform grid in x
            n_q = _N_QUAD
            h = 2 * self.x_max / n_q
            u = h * torch.arange(n_q, dtype=x.dtype)
            kernel = h / torch.sqrt((u[:, None] - u[None, :]) ** 2 + self.interaction_softening**2)
            rho = ((psi0 + a) ** 2 + b**2).reshape(-1, n_q)
            v_hx = (rho @ kernel).reshape(-1)
            dv_hx = ((rho - (psi0**2).reshape(-1, n_q)) @ kernel).reshape(-1)
            r_re = r_re - v_hx * a - dv_hx * psi0
            r_im = r_im - v_hx * b
        return r_re, r_im

    def _potential_torch(self, x):
        return well_potential(self.potential, x, omega0=self.omega0, charge=self.charge,
                              softening=self.softening)

    def _sample(self, rng: np.random.Generator, n: int):
        """Collocation points: x uniform, t in equal strata (sorted by stratum), E₀ uniform."""
        import torch

        nb = self.n_time_bins
        if self.n_electrons == 2:
            return self._sample_grid(rng, n)
        per = max(1, n // nb)
        # half the points uniform in the box, half where the electron is (|ψ₀|² widened ×2)
        n_all = nb * per
        x = rng.uniform(-self.x_max, self.x_max, n_all)
        near = rng.random(n_all) < 0.5
        x[near] = np.clip(rng.normal(0.0, 2 * self._psi0_width, near.sum()),
                          -self.x_max, self.x_max)
        t = ((np.repeat(np.arange(nb), per) + rng.uniform(0, 1, nb * per)) / nb) * self.t_final
        e = rng.uniform(self.e0_min, self.e0_max, nb * per)
        xte = torch.tensor(np.stack([x, t, e], axis=1), dtype=torch.float32)
        psi0 = torch.tensor(self.psi0(x), dtype=torch.float32)
        return (xte, psi0), per

    def _sample_grid(self, rng: np.random.Generator, n: int):
        """Two electrons: per sampled time, a uniform x grid of ``_N_QUAD`` points, randomly shifted."""
        import torch

        nb, n_q = self.n_time_bins, _N_QUAD
        k = max(1, n // n_q // nb)
        t = ((np.repeat(np.arange(nb), k) + rng.uniform(0, 1, nb * k)) / nb) * self.t_final
        e = rng.uniform(self.e0_min, self.e0_max, nb * k)
        h = 2 * self.x_max / n_q
        x = -self.x_max + rng.uniform(0, h, (nb * k, 1)) + h * np.arange(n_q)[None, :]
        x = x.ravel()
        xte = torch.tensor(np.stack([x, np.repeat(t, n_q), np.repeat(e, n_q)], axis=1),
                           dtype=torch.float32)
        return (xte, torch.tensor(self.psi0(x), dtype=torch.float32)), k * n_q

    def _squared_residual(self, batch):
        r_re, r_im = self._residual(*batch)
        return r_re**2 + r_im**2

    # ------------------------------------------------------------------ prediction
    def _check_e0(self, e0: float) -> None:
        if not (self.e0_min - 1e-12 <= e0 <= self.e0_max + 1e-12):
            raise InputError(f"e0: {e0!r} is outside the trained range "
                             f"[{self.e0_min}, {self.e0_max}]")

    def predict_psi(self, x: np.ndarray, t: np.ndarray, e0: float) -> np.ndarray:
        """Wave function on the grid ``t × x`` for amplitude ``e0``.

        Parameters
        ----------
        x : (n_x,) positions (bohr), inside ``[-x_max, x_max]``.
        t : (n_t,) times (a.u.), inside ``[0, t_final]``.
        e0 : float, inside the trained range.

        Returns
        -------
        (n_t, n_x) complex ψ (bohr^-1/2).
        """
        import torch

        self._check_fitted()
        self._check_e0(float(e0))
        x = np.asarray(x, dtype=float)
        t = np.asarray(t, dtype=float)
        if np.any(np.abs(x) > self.x_max + 1e-9) or np.any(t < -1e-9) or np.any(t > self.t_final + 1e-9):
            raise InputError(f"x, t: points must lie in [-{self.x_max}, {self.x_max}] × "
                             f"[0, {self.t_final}]")
        tt, xx = np.meshgrid(t, x, indexing="ij")
        pts = np.stack([xx.ravel(), tt.ravel(), np.full(xx.size, float(e0))], axis=1)
        with torch.no_grad():
            a, b = self._correction(torch.tensor(pts, dtype=torch.float32))
        phi = self.psi0(x)[None, :] + (a.numpy() + 1j * b.numpy()).reshape(xx.shape)
        return np.exp(-1j * self.ground_energy_ * t)[:, None] * phi

    def predict_density(self, x: np.ndarray, t: np.ndarray, e0: float) -> np.ndarray:
        """(n_t, n_x) density ``n_electrons |ψ|²`` (1/bohr) on the grid ``t × x``."""
        return self.n_electrons * np.abs(self.predict_psi(x, t, e0)) ** 2

    def residual_loss(self, n_points: int = 4096, seed: int = 123) -> float:
        """Mean squared TDSE residual (no causal weights) on ``n_points`` fresh random points."""
        return self._residual_on(n_points, seed)

    @staticmethod
    def _legacy_file(blob: dict) -> tuple[dict, float, np.ndarray] | None:
        """The old format (``TDSEPINN/1``, NumPy arrays pickled): read with ``trust_pickle`` only."""
        if blob.get("format") != _PINN_FORMAT_1:
            return None
        return blob["params"], blob["fit_time_s"], np.asarray(blob["loss_history"])


def compare_with_reference(model: TDSEPINN, e0: float, *, n_x: int = 256, n_steps: int = 400,
                           n_saved: int = 81, repeats: int = 3) -> dict[str, Any]:
    """PINN against the Crank–Nicolson reference at one amplitude, with timings.

    Both produce the density on the same ``n_saved × n_x`` space-time grid;
    each is timed ``repeats`` times and the fastest run is kept.

    Returns
    -------
    dict with ``x`` (n_x,), ``t`` (n_saved,), ``density_pinn`` and
    ``density_reference`` (n_saved, n_x), ``dipole_pinn``/``dipole_reference``
    (n_saved,), ``density_error`` (relative L2 over space and time),
    ``static_error`` (same, for the field-free guess ρ(x,t) = ρ₀(x)),
    ``inference_time_s`` and ``reference_time_s``.
    """
    from matterflow.dft1d.tdse import density_rel_l2, propagate

    model._check_fitted()
    model._check_e0(float(e0))
    ref_times, pinn_times = [], []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        ref = propagate(model.setup, float(e0), n_x=n_x, n_steps=n_steps, n_saved=n_saved)
        rho_ref = ref.density
        ref_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        rho = model.predict_density(ref.x, ref.t, float(e0))
        pinn_times.append(time.perf_counter() - start)
    dx = ref.dx
    return {"x": ref.x, "t": ref.t, "density_pinn": rho, "density_reference": rho_ref,
            "dipole_pinn": (rho * ref.x).sum(axis=1) * dx / model.n_electrons,
            "dipole_reference": ref.dipole,
            "density_error": density_rel_l2(rho, rho_ref),
            "static_error": density_rel_l2(np.broadcast_to(rho_ref[:1], rho_ref.shape), rho_ref),
            "inference_time_s": min(pinn_times), "reference_time_s": min(ref_times)}
