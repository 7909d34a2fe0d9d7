"""A parametric PINN for the non-linear time-dependent Kohn–Sham equation of a 1D singlet pair.

One network ``N_θ(x, t, E₀, ω, s) → (Re, Im)`` is trained once for field
amplitudes ``E₀ ∈ [e0_min, e0_max]``, frequencies ``ω ∈ [omega_min,
omega_max]`` of the dipole field ``E₀ sin(ωt) x`` and initial states ``s``
(0: self-consistent ground orbital, 1: both electrons in the first excited
orbital; see :mod:`.tdks`), atomic units. The orbital is built so that the
initial condition, the walls and the field-free limit hold exactly::

    φ(x, t) = exp(−i ε_s t) [ φ_s(x) + E₀ t (1 − x²/L²) N_θ(x, t, E₀, ω, s) ]

with ``φ_s, ε_s`` the self-consistent orbital and eigenvalue (from
:func:`.tdks.ks_state` on a 511-point grid, splined). The loss is the
physics residual of the TDKS equation in the frame turning with ``ε_s``
(``c = φ e^{iε_s t} − φ_s``)::

    R = i∂ₜc + ½∂ₓ²c − (V + v_Hxc[ρ] − ε_s) c − (v_Hxc[ρ] − v_Hxc[ρ_s]) φ_s − x E(t)(φ_s + c),

``ρ = |φ_s + c|²``, divided by ``max(E₀, 0.05 e0_max)`` so that every
amplitude weighs alike. ``v_Hxc[ρ] = ∫ρ(x′) w(x − x′) dx′`` (half the Hartree
potential: exact exchange for a singlet pair) is non-linear in the orbital; it
is computed by quadrature on each sampled time's own block of ``n_quad``
points, a randomly shifted uniform grid over the box. The initial condition
needs no loss term (it is built in).

Inputs besides ``x/L, t/T`` and the scaled parameters: ``sin/cos(kπx/L)``,
``sin/cos(ωt)`` (the drive) and ``sin/cos(Δε t)`` for the three KS gaps
``Δε = ε_k − ε_s`` of state ``s`` (the free oscillations in that frame).

Training (:class:`~matterflow.dft1d.pinn_base.ParametricPINN`, shared with the
TDSE PINN): Adam on fresh collocation blocks every step (times in equal strata,
with causal weights, Wang, Sankaran & Perdikaris 2022), learning rate decaying
×0.1 over the run, then optional L-BFGS on a fixed set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError
from matterflow.dft1d.pinn_base import ParametricPINN, break_even_queries
from matterflow.dft1d.tdks import TDKSSetup, grid, ks_state

__all__ = ["TDKSPINN", "compare_tdks", "evaluate_tdks", "break_even_queries", "write_nexus",
           "comparison_figure", "PINN_FORMAT"]

PINN_FORMAT = "matterflow.dft1d.TDKSPINN/1"   # torch.save of tensors + JSON text

_SETUP_NAMES = ("potential", "charge", "softening", "omega0", "x_max", "t_final",
                "interaction_softening", "interaction_strength")
_PARAM_NAMES = (*_SETUP_NAMES, "e0_min", "e0_max", "omega_min", "omega_max", "states", "width",
                "depth", "n_fourier", "adam_steps", "lbfgs_steps", "learning_rate", "n_blocks",
                "n_quad", "n_time_bins", "causal_eps", "ground_weight", "seed", "n_threads")
_N_GAPS = 3
_E_FLOOR = 0.05     # residual scale: max(E0, _E_FLOOR * e0_max)


def _build_net(width: int, depth: int, n_in: int):
    from torch import nn

    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.Tanh()]
    layers.append(nn.Linear(width, 2))
    net = nn.Sequential(*layers)
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
    return net


class TDKSPINN(ParametricPINN):
    """Parametric PINN ``(x, t; E₀, ω, s) → φ`` for the driven TDKS singlet pair.

    Parameters
    ----------
    potential, charge, softening, omega0, x_max, t_final, interaction_softening, interaction_strength
        The problem, as in :class:`~matterflow.dft1d.tdks.TDKSSetup` (a.u.).
    e0_min, e0_max : float
        Trained field amplitudes (Eₕ/(e·bohr)), ``0 <= e0_min < e0_max``.
    omega_min, omega_max : float
        Trained field frequencies (Eₕ/ħ), ``0 <= omega_min <= omega_max``.
    states : sequence of {0, 1}
        Trained initial states (0 ground, 1 first excited orbital, doubly occupied).
    width, depth : int
        Hidden units per layer and hidden layers (tanh).
    n_fourier : int
        ``sin/cos(kπx/L)`` input features, ``k = 1..n_fourier``.
    adam_steps, lbfgs_steps : int
        Adam iterations (fresh points each) and L-BFGS iterations (fixed points).
    learning_rate : float
        Initial Adam step (decays ×0.1 over the run).
    n_blocks : int
        Sampled ``(t, E₀, ω, s)`` per Adam step (a multiple of ``n_time_bins`` is used).
    n_quad : int
        x points per block (the quadrature grid of ``v_Hxc``).
    n_time_bins, causal_eps : int, float
        Time strata and causal weighting strength (0: off).
    ground_weight : float
        Weight of the ground-state blocks' squared residual (its response is smaller
        than the excited state's, so its relative error is larger at equal residual);
        the residual figures (``loss_history_``, :meth:`residual_loss`) include it.
    seed : int
        Seed of the weights and the collocation points.
    n_threads : int
        Torch threads while training (0 keeps torch's setting).
    """

    FORMAT = PINN_FORMAT
    _PARAM_NAMES = _PARAM_NAMES
    _BATCH_PARAM = "n_blocks"
    _WHAT = "a saved TDKSPINN model (from `matterflow dft1d pinn-tdks --save`)"

    def __init__(self, potential: str = "soft_coulomb", charge: float = 2.0,
                 softening: float = 1.0, omega0: float = 1.0, x_max: float = 10.0,
                 t_final: float = 10.0, interaction_softening: float = 1.0,
                 interaction_strength: float = 1.0, e0_min: float = 0.0, e0_max: float = 0.05,
                 omega_min: float = 0.3, omega_max: float = 1.0,
                 states: Sequence[int] = (0, 1), width: int = 64, depth: int = 4,
                 n_fourier: int = 6, adam_steps: int = 3000, lbfgs_steps: int = 0,
                 learning_rate: float = 5e-3, n_blocks: int = 32, n_quad: int = 64,
                 n_time_bins: int = 8, causal_eps: float = 50.0, ground_weight: float = 2.0,
                 seed: int = 0,
                 n_threads: int = 1) -> None:
        self.potential = potential
        self.charge = charge
        self.softening = softening
        self.omega0 = omega0
        self.x_max = x_max
        self.t_final = t_final
        self.interaction_softening = interaction_softening
        self.interaction_strength = interaction_strength
        self.e0_min = e0_min
        self.e0_max = e0_max
        self.omega_min = omega_min
        self.omega_max = omega_max
        self.states = states
        self.width = width
        self.depth = depth
        self.n_fourier = n_fourier
        self.adam_steps = adam_steps
        self.lbfgs_steps = lbfgs_steps
        self.learning_rate = learning_rate
        self.n_blocks = n_blocks
        self.n_quad = n_quad
        self.n_time_bins = n_time_bins
        self.causal_eps = causal_eps
        self.ground_weight = ground_weight
        self.seed = seed
        self.n_threads = n_threads

    # ------------------------------------------------------------------ settings
    @property
    def setup(self) -> TDKSSetup:
        """The physical problem (validated)."""
        return TDKSSetup(**{k: getattr(self, k) for k in _SETUP_NAMES})

    def _validate(self) -> None:
        self.setup  # noqa: B018  (raises InputError on a bad problem)
        if not (0 <= self.e0_min < self.e0_max):
            raise InputError(f"e0_min, e0_max: need 0 <= e0_min < e0_max; got "
                             f"{self.e0_min!r}, {self.e0_max!r}")
        if not (0 <= self.omega_min <= self.omega_max):
            raise InputError(f"omega_min, omega_max: need 0 <= omega_min <= omega_max; got "
                             f"{self.omega_min!r}, {self.omega_max!r}")
        states = list(self.states)
        if not states or any(s not in (0, 1) for s in states) or len(set(states)) != len(states):
            raise InputError(f"states: distinct values of 0 (ground) and 1 (first excited); "
                             f"got {self.states!r}")
        for name, low in (("width", 1), ("depth", 1), ("adam_steps", 0), ("lbfgs_steps", 0),
                          ("n_blocks", 1), ("n_quad", 16), ("n_time_bins", 1),
                          ("n_fourier", 0), ("n_threads", 0)):
            if int(getattr(self, name)) < low:
                raise InputError(f"{name}: must be >= {low}; got {getattr(self, name)!r}")
        if not self.ground_weight > 0:
            raise InputError(f"ground_weight: must be > 0; got {self.ground_weight!r}")
        if not self.learning_rate > 0 or self.causal_eps < 0:
            raise InputError("learning_rate must be > 0 and causal_eps >= 0; got "
                             f"{self.learning_rate!r}, {self.causal_eps!r}")

    # ------------------------------------------------------------------ initial states
    def _init_states(self) -> None:
        from scipy.interpolate import CubicSpline

        setup = self.setup
        xg = grid(setup.x_max, 511)
        xs = np.concatenate([[-setup.x_max], xg, [setup.x_max]])
        self.state_energy_ = np.zeros(2)
        self.state_gaps_ = np.zeros((2, _N_GAPS))
        self._splines: dict[int, Any] = {}
        for s in self.states:
            orb = ks_state(setup, xg, int(s), n_levels=_N_GAPS + 1)
            self.state_energy_[s] = orb.energy
            self.state_gaps_[s] = np.delete(orb.levels, s)[:_N_GAPS] - orb.energy
            self._splines[int(s)] = CubicSpline(xs, np.concatenate([[0.0], orb.orbital, [0.0]]))

    def orbital0(self, x: np.ndarray, state: int) -> np.ndarray:
        """Initial orbital ``φ_s(x)`` (bohr^-1/2), splined from a 511-point grid."""
        return self._splines[int(state)](np.clip(x, -self.x_max, self.x_max))

    @property
    def _n_in(self) -> int:
        return 5 + 2 * int(self.n_fourier) + 2 + 2 * _N_GAPS

    # ------------------------------------------------------------------ the ansatz
    def _correction(self, x, t, e, w, s):
        """``c = E₀ t (1 − x²/L²) N`` at points (all (n,) tensors): (Re, Im) each (n,)."""
        import torch

        L, T = self.x_max, self.t_final
        e_mid, e_half = 0.5 * (self.e0_min + self.e0_max), 0.5 * (self.e0_max - self.e0_min)
        w_mid = 0.5 * (self.omega_min + self.omega_max)
        w_half = max(0.5 * (self.omega_max - self.omega_min), 1e-6)
        si = s.long()
        gaps = self._gaps_t[si]                                   # (n, N_GAPS)
        feats = [x / L, 2 * t / T - 1, (e - e_mid) / e_half, (w - w_mid) / w_half, 2 * s - 1,
                 torch.sin(w * t), torch.cos(w * t)]
        if self.n_fourier:
            k = torch.arange(1, int(self.n_fourier) + 1, dtype=x.dtype)
            arg = torch.pi * x[:, None] * k / L
            feats_f = [torch.sin(arg), torch.cos(arg)]
        else:
            feats_f = []
        gt = gaps * t[:, None]
        z = torch.cat([torch.stack(feats, dim=1), *feats_f, torch.sin(gt), torch.cos(gt)], dim=1)
        out = self.model_(z)
        gate = e * t * (1 - (x / L) ** 2)
        return gate * out[:, 0], gate * out[:, 1]

    def _residual(self, x, t, e, w, s, phi_s, rho_s_hxc, v_loc):
        """Scaled residual (Re, Im) on blocks of ``n_quad`` points (one time each)."""
        import torch

        x = x.requires_grad_(True)
        t = t.requires_grad_(True)
        a, b = self._correction(x, t, e, w, s)
        ax, at = torch.autograd.grad(a.sum(), (x, t), create_graph=True)
        bx, bt = torch.autograd.grad(b.sum(), (x, t), create_graph=True)
        axx = torch.autograd.grad(ax.sum(), x, create_graph=True)[0]
        bxx = torch.autograd.grad(bx.sum(), x, create_graph=True)[0]
        nq = int(self.n_quad)
        rho = ((phi_s + a) ** 2 + b**2).reshape(-1, nq)
        v_hxc = (rho @ self._kernel_t).reshape(-1)
        dv = v_hxc - rho_s_hxc
        xe = x * e * torch.sin(w * t)
        pot = v_loc + v_hxc                                       # V − ε_s + v_Hxc[ρ]
        r_re = -bt + 0.5 * axx - pot * a - dv * phi_s - xe * (phi_s + a)
        r_im = at + 0.5 * bxx - pot * b - xe * b
        scale = torch.clamp(e, min=_E_FLOOR * self.e0_max)
        return r_re / scale, r_im / scale

    def _potential_np(self, x: np.ndarray) -> np.ndarray:
        from matterflow.dft1d.tdks import external_potential

        return external_potential(self.setup, x)

    def _sample(self, rng: np.random.Generator, n_blocks: int):
        """Blocks of ``n_quad`` shifted uniform x points, one (t, E₀, ω, s) each, by time stratum."""
        import torch

        nb, nq = int(self.n_time_bins), int(self.n_quad)
        k = max(1, n_blocks // nb)
        m = nb * k
        t = ((np.repeat(np.arange(nb), k) + rng.uniform(0, 1, m)) / nb) * self.t_final
        e = rng.uniform(self.e0_min, self.e0_max, m)
        w = rng.uniform(self.omega_min, self.omega_max, m)
        s = rng.choice(np.asarray(list(self.states), dtype=int), m)
        h = 2 * self.x_max / nq
        x = -self.x_max + rng.uniform(0, h, (m, 1)) + h * np.arange(nq)[None, :]
        phi_s = np.empty((m, nq))
        for st in set(s.tolist()):
            phi_s[s == st] = self.orbital0(x[s == st], st)
        rho_s_hxc = (phi_s**2) @ self._kernel_np
        v_loc = self._potential_np(x) - self.state_energy_[s][:, None]

        def col(a: np.ndarray) -> torch.Tensor:
            return torch.tensor(np.broadcast_to(np.asarray(a, float).reshape(m, -1), (m, nq))
                                .ravel(), dtype=torch.float32)

        return (col(x), col(t), col(e), col(w), col(s.astype(float)), col(phi_s),
                col(rho_s_hxc), col(v_loc)), k * nq

    def _squared_residual(self, batch):
        import torch

        r_re, r_im = self._residual(*batch)
        sq = r_re**2 + r_im**2
        if self.ground_weight != 1.0:
            sq = sq * torch.where(batch[4] == 0, float(self.ground_weight), 1.0)
        return sq

    def _init_model(self) -> None:
        import torch

        self._validate()
        self._init_states()
        nq = int(self.n_quad)
        h = 2 * self.x_max / nq
        u = h * np.arange(nq)
        self._kernel_np = h * self.interaction_strength / np.sqrt(
            (u[:, None] - u[None, :]) ** 2 + self.interaction_softening**2)
        self._kernel_t = torch.tensor(self._kernel_np, dtype=torch.float32)
        self._gaps_t = torch.tensor(self.state_gaps_, dtype=torch.float32)
        self.model_ = _build_net(int(self.width), int(self.depth), self._n_in)

    # ------------------------------------------------------------------ prediction
    def check_query(self, e0: float, omega: float, state: int) -> None:
        """InputError unless ``(e0, omega, state)`` lies in the trained ranges."""
        if not (self.e0_min - 1e-12 <= e0 <= self.e0_max + 1e-12):
            raise InputError(f"e0: {e0!r} is outside the trained range [{self.e0_min}, {self.e0_max}]")
        if not (self.omega_min - 1e-12 <= omega <= self.omega_max + 1e-12):
            raise InputError(f"omega: {omega!r} is outside the trained range "
                             f"[{self.omega_min}, {self.omega_max}]")
        if state not in [int(s) for s in self.states]:
            raise InputError(f"state: {state!r} was not trained; trained states "
                             f"{[int(s) for s in self.states]}")

    def predict_phi(self, x: np.ndarray, t: np.ndarray, e0: float, omega: float,
                    state: int = 0) -> np.ndarray:
        """(n_t, n_x) complex orbital φ (bohr^-1/2) on the grid ``t × x``."""
        import torch

        self._check_fitted()
        self.check_query(float(e0), float(omega), int(state))
        x = np.asarray(x, dtype=float)
        t = np.asarray(t, dtype=float)
        if (np.any(np.abs(x) > self.x_max + 1e-9) or np.any(t < -1e-9)
                or np.any(t > self.t_final + 1e-9)):
            raise InputError(f"x, t: points must lie in [-{self.x_max}, {self.x_max}] × "
                             f"[0, {self.t_final}]")
        tt, xx = np.meshgrid(t, x, indexing="ij")
        n = xx.size

        def full(v: float) -> torch.Tensor:
            return torch.full((n,), float(v), dtype=torch.float32)

        with torch.no_grad():
            a, b = self._correction(torch.tensor(xx.ravel(), dtype=torch.float32),
                                    torch.tensor(tt.ravel(), dtype=torch.float32),
                                    full(e0), full(omega), full(state))
        c = (a.numpy() + 1j * b.numpy()).reshape(xx.shape)
        phi = self.orbital0(x, state)[None, :] + c
        return np.exp(-1j * self.state_energy_[state] * t)[:, None] * phi

    def predict_density(self, x: np.ndarray, t: np.ndarray, e0: float, omega: float,
                        state: int = 0) -> np.ndarray:
        """(n_t, n_x) density ``2|φ|²`` (1/bohr)."""
        return 2.0 * np.abs(self.predict_phi(x, t, e0, omega, state)) ** 2

    def residual_loss(self, n_blocks: int = 64, seed: int = 123) -> float:
        """Mean squared scaled residual (no causal weights) on fresh random blocks."""
        return self._residual_on(n_blocks, seed)


def compare_tdks(model: TDKSPINN, e0: float, omega: float, state: int = 0, *, n_x: int = 256,
                 n_steps: int = 1000, n_saved: int = 101, repeats: int = 1,
                 rel_height: float = 0.2, omega_max_spectrum: float = 3.0) -> dict[str, Any]:
    """PINN against the Crank–Nicolson TDKS reference at one ``(E₀, ω, s)``, timed.

    Returns
    -------
    dict with ``x`` (n_x,), ``t`` (n_saved,), ``density_pinn``/``density_reference``
    (n_saved, n_x), ``dipole_pinn``/``dipole_reference`` (n_saved,) (∫ x n dx, bohr),
    ``density_error`` (relative L2 over x and t), ``static_error`` (the same for the
    field-free guess n(x, t) = n(x, 0)), ``induced_error`` (``‖Δn_PINN − Δn_ref‖ /
    ‖Δn_ref‖`` of the change ``Δn = n(t) − n(0)``), ``peaks_pinn``/``peaks_reference``
    (dipole spectrum peaks, Eₕ/ħ), ``peak_error`` (largest relative shift of a reference
    peak to the nearest PINN peak), ``inference_time_s``, ``reference_time_s`` (fastest
    of ``repeats``).
    """
    from matterflow.dft1d.tdks import dipole_spectrum, propagate_tdks, spectrum_peaks

    model._check_fitted()
    model.check_query(float(e0), float(omega), int(state))
    setup = model.setup
    ref_t, pinn_t = [], []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        ref = propagate_tdks(setup, float(e0), float(omega), state=int(state), n_x=n_x,
                             n_steps=n_steps, n_saved=n_saved)
        rho_ref = ref.density
        ref_t.append(time.perf_counter() - start)
        start = time.perf_counter()
        rho = model.predict_density(ref.x, ref.t, float(e0), float(omega), int(state))
        pinn_t.append(time.perf_counter() - start)
    dx = ref.dx
    dip = (rho * ref.x).sum(axis=1) * dx
    dip_ref = ref.dipole
    norm = float(np.linalg.norm(rho_ref))
    d_ref = rho_ref - rho_ref[:1]
    d_pinn = rho - rho[:1]
    peaks = {}
    for name, d in (("pinn", dip), ("reference", dip_ref)):
        w, amp = dipole_spectrum(ref.t, d)
        peaks[name] = spectrum_peaks(w, amp, rel_height=rel_height, omega_max=omega_max_spectrum)
    if len(peaks["reference"]) and len(peaks["pinn"]):
        shift = [np.min(np.abs(peaks["pinn"] - p)) / p for p in peaks["reference"]]
        peak_error = float(np.max(shift))
    else:
        peak_error = float("nan") if not len(peaks["reference"]) else float("inf")
    return {"x": ref.x, "t": ref.t, "density_pinn": rho, "density_reference": rho_ref,
            "dipole_pinn": dip, "dipole_reference": dip_ref,
            "density_error": float(np.linalg.norm(rho - rho_ref) / norm),
            "static_error": float(np.linalg.norm(rho_ref[:1] - rho_ref) / norm),
            "induced_error": float(np.linalg.norm(d_pinn - d_ref) / max(np.linalg.norm(d_ref),
                                                                         1e-300)),
            "peaks_pinn": peaks["pinn"], "peaks_reference": peaks["reference"],
            "peak_error": peak_error,
            "inference_time_s": min(pinn_t), "reference_time_s": min(ref_t)}


def evaluate_tdks(model: TDKSPINN, cases: Sequence[tuple[float, float, int]], *,
                  progress: Callable[[int, int], None] | None = None, **kwargs: Any
                  ) -> dict[str, Any]:
    """:func:`compare_tdks` for each ``(E₀, ω, s)`` and the summary figures.

    ``progress(done, total)`` is called after each case; other keywords go to
    :func:`compare_tdks`.

    Returns
    -------
    dict with ``rows`` (one :func:`compare_tdks` dict each), ``worst_density_error``,
    ``worst_case``, ``worst_peak_error``, ``mean_inference_time_s``,
    ``mean_reference_time_s`` and ``break_even_queries`` (``inf``: never).
    """
    if not cases:
        raise InputError("cases: at least one (e0, omega, state) is needed")
    rows = []
    for e, w, s in cases:
        rows.append(compare_tdks(model, float(e), float(w), int(s), **kwargs))
        if progress is not None:
            progress(len(rows), len(cases))
    errs = [r["density_error"] for r in rows]
    i = int(np.argmax(errs))
    inf_t = float(np.mean([r["inference_time_s"] for r in rows]))
    ref_t = float(np.mean([r["reference_time_s"] for r in rows]))
    peak = [r["peak_error"] for r in rows if not np.isnan(r["peak_error"])]
    return {"rows": rows, "cases": [tuple(c) for c in cases], "worst_density_error": errs[i],
            "worst_case": tuple(cases[i]),
            "worst_peak_error": float(np.max(peak)) if peak else float("nan"),
            "mean_inference_time_s": inf_t, "mean_reference_time_s": ref_t,
            "break_even_queries": break_even_queries(model.fit_time_s_, inf_t, ref_t)}


def write_nexus(path: str | Path, model: TDKSPINN, evaluation: dict[str, Any], *,
                reference: str = "") -> Path:
    """Write a NeXus/HDF5 file of an :func:`evaluate_tdks` result; returns the path.

    ``/entry`` (``NXentry``): ``process`` (``NXprocess``: program, version, date,
    the model's parameters as JSON, training time and residual history),
    ``summary`` (``NXcollection``: worst errors, timings, break-even count) and one
    ``case_<i>`` (``NXdata``, signal ``density_pinn`` over ``(t, x)``, with
    ``density_reference``, ``dipole_pinn``, ``dipole_reference`` and the case's
    ``e0``/``omega``/``state`` and errors as attributes) per compared case. The
    layout follows NeXus conventions; no application definition is claimed.
    """
    from matterflow import __version__
    from matterflow.core.store import atomic_h5, now_iso

    rows = evaluation["rows"]
    with atomic_h5(path) as nx:
        nx.attrs["NX_class"] = "NXroot"
        nx.attrs["creator"] = "matterflow"
        nx.attrs["file_time"] = now_iso()
        e = nx.create_group("entry")
        e.attrs["NX_class"] = "NXentry"
        e.attrs["default"] = f"case_{int(np.argmax([r['density_error'] for r in rows]))}"
        e["title"] = "TDKS PINN (two-electron singlet, adiabatic EXX) vs Crank-Nicolson"
        pr = e.create_group("process")
        pr.attrs["NX_class"] = "NXprocess"
        pr["program"] = "matterflow.dft1d.pinn_tdks"
        pr["version"] = __version__
        pr["date"] = now_iso()
        pr["parameters"] = json.dumps(model.get_params())
        pr["reference"] = reference or "matterflow.dft1d.tdks.propagate_tdks (Crank-Nicolson)"
        pr["train_time"] = float(model.fit_time_s_)
        pr["train_time"].attrs["units"] = "s"
        pr["residual_history"] = np.asarray(model.loss_history_, dtype=float)
        pr["residual_history"].attrs["units"] = "dimensionless (residual / E0)^2"
        sm = e.create_group("summary")
        sm.attrs["NX_class"] = "NXcollection"
        for key, unit in (("worst_density_error", "dimensionless"),
                          ("worst_peak_error", "dimensionless"),
                          ("mean_inference_time_s", "s"), ("mean_reference_time_s", "s"),
                          ("break_even_queries", "dimensionless")):
            sm[key] = float(evaluation[key])
            sm[key].attrs["units"] = unit
        sm["worst_case"] = np.asarray(evaluation["worst_case"], dtype=float)
        sm["worst_case"].attrs["columns"] = "e0 (Eh/(e bohr)), omega (Eh/hbar), state"
        for i, (case, r) in enumerate(zip(evaluation["cases"], rows, strict=True)):
            d = e.create_group(f"case_{i}")
            d.attrs["NX_class"] = "NXdata"
            d.attrs["signal"] = "density_pinn"
            d.attrs["auxiliary_signals"] = ["density_reference"]
            d.attrs["axes"] = ["t", "x"]
            for key, unit in (("e0", "Eh/(e bohr)"), ("omega", "Eh/hbar")):
                d.attrs[key] = float(case[0] if key == "e0" else case[1])
                d.attrs[f"{key}_units"] = unit
            d.attrs["state"] = int(case[2])
            for key in ("density_error", "static_error", "induced_error", "peak_error",
                        "inference_time_s", "reference_time_s"):
                d.attrs[key] = float(r[key])
            for key, unit in (("x", "bohr"), ("t", "hbar/Eh"), ("density_pinn", "1/bohr"),
                              ("density_reference", "1/bohr"), ("dipole_pinn", "bohr"),
                              ("dipole_reference", "bohr"), ("peaks_pinn", "Eh/hbar"),
                              ("peaks_reference", "Eh/hbar")):
                d.create_dataset(key, data=np.asarray(r[key], dtype=float))
                d[key].attrs["units"] = unit
    return Path(path)


def comparison_figure(row: dict[str, Any], case: tuple[float, float, int]) -> Any:
    """A matplotlib figure: n(x, t) of CN and PINN, their difference, and the dipole ∫x n dx."""
    import matplotlib.pyplot as plt

    x, t = row["x"], row["t"]
    ref, pinn = row["density_reference"], row["density_pinn"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    vmax = float(max(ref.max(), pinn.max()))
    im = None
    for ax, data, title in ((axes[0], ref, "Crank–Nicolson"), (axes[1], pinn, "PINN")):
        im = ax.pcolormesh(x, t, data, shading="auto", vmin=0, vmax=vmax, cmap="viridis")
        ax.set_title(f"{title} n(x,t)")
        ax.set_xlabel("x (bohr)")
    axes[0].set_ylabel("t (ħ/Eₕ)")
    fig.colorbar(im, ax=axes[1], label="n (1/bohr)")
    diff = pinn - ref
    lim = float(np.abs(diff).max()) or 1.0
    im = axes[2].pcolormesh(x, t, diff, shading="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[2].set_title(f"PINN − CN (rel. L2 {row['density_error']:.2%})")
    axes[2].set_xlabel("x (bohr)")
    fig.colorbar(im, ax=axes[2])
    axes[3].plot(t, row["dipole_reference"], "k-", lw=1.2, label="Crank–Nicolson")
    axes[3].plot(t, row["dipole_pinn"], "C1--", lw=1.5, label="PINN")
    axes[3].set_xlabel("t (ħ/Eₕ)")
    axes[3].set_ylabel("∫ x n dx (bohr)")
    axes[3].legend(fontsize=7)
    fig.suptitle(f"E₀ = {case[0]:g}, ω = {case[1]:g}, initial state {int(case[2])}")
    fig.tight_layout()
    return fig
