"""A learned inversion that is never silently wrong: FNO start + exact Wu–Yang refinement.

Two tools on top of a trained :class:`matterflow.dft1d.fno.DensityToPotentialFNO`:

* :func:`fno_reliability` — the FNO alone, with its own error bar per sample: the density
  that its predicted potential produces (one KS diagonalisation) is compared with the input
  density (``density_residual = ∫|n[v_pred] - n| dx / N``, the figure the FNO is scored by,
  known without the exact potential because the target density *is* the input), and the gap
  between the highest occupied and the next KS level of that potential (a small gap means a
  density hypersensitive to the potential). Samples whose residual exceeds ``threshold`` (or
  whose gap is below ``gap_threshold``, if given) are flagged.
* :func:`refine_inversion` — the FNO's potential starts a Newton maximisation of the same
  regularised Wu–Yang functional as :func:`matterflow.dft1d.inversion.invert_density`, run to
  ``tol`` (max |n_KS - n|, default 1e-6 /bohr): the answer is an exact inversion, the network
  only buys iterations. Near the solution (which is what a good start gives) the refinement is
  a *chord* Newton method: the Hessian (exact static KS response from one full
  diagonalisation) is factorised once (Cholesky) at the start and reused, each step then costs
  one back-substitution and one partial diagonalisation (the occupied levels only); a step is
  accepted only if it raises the Wu–Yang functional W, the Hessian is rebuilt when the error
  stops shrinking fast, and if a rebuilt Hessian still gives no ascent the sample is handed to
  :func:`~matterflow.dft1d.inversion.invert_density` (line search, damping) from the current
  potential, so convergence never depends on the network. Grid matrices (kinetic energy,
  interaction, regulariser) are built once per call. With ``compare_cold`` each density is also
  inverted from the cold start (``invert_density(guess="reference")``, the Fermi–Amaldi
  reference: the general Wu–Yang path) in the same run, and — as a control of what the start
  buys, not the method — by the same chord kernel started from that reference.

Units: bohr, Ha, electrons/bohr.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["FNOReliability", "RefinedInversion", "fno_reliability", "refine_inversion"]


@dataclass(frozen=True)
class FNOReliability:
    """Per-sample reliability of FNO predictions (see :func:`fno_reliability`).

    ``v_ks`` (n, n_points) Ha: the FNO's KS potential; ``predicted_density`` (n, n_points)
    1/bohr: its KS density; ``density_residual`` (n,): ∫|n[v_pred] - n| dx / ∫ n dx;
    ``max_density_error`` (n,) 1/bohr: max |n[v_pred] - n|; ``gap`` (n,) Ha: next level
    minus highest occupied level of ``v_ks``; ``flagged`` (n,) bool; ``threshold`` and
    ``gap_threshold`` (Ha, nan if unused) the flag rule; ``fno_seconds_per_sample`` the
    batched prediction, ``check_seconds_per_sample`` the KS solve.
    """

    v_ks: np.ndarray
    predicted_density: np.ndarray
    density_residual: np.ndarray
    max_density_error: np.ndarray
    gap: np.ndarray
    flagged: np.ndarray
    threshold: float
    gap_threshold: float
    fno_seconds_per_sample: float
    check_seconds_per_sample: float


@dataclass(frozen=True)
class RefinedInversion:
    """FNO-started inversions of a batch of densities (see :func:`refine_inversion`).

    ``v_ks``, ``v_hxc``, ``density`` (n, n_points): the converged inversion (Ha, 1/bohr);
    ``max_density_error`` (n,) 1/bohr; ``converged`` (n,) bool; ``n_iterations`` (n,) Newton
    iterations from the FNO start; ``seconds`` (n,): FNO share (batched, per sample) plus the
    Newton iterations, wall time; ``cpu_seconds`` (n,) the same in CPU time of this process
    (robust on a loaded machine). ``start_max_density_error`` (n,): max |n[v_FNO] - n| before
    refining. With ``compare_cold``: ``cold_n_iterations``, ``cold_seconds``,
    ``cold_cpu_seconds``, ``cold_max_density_error`` (n,) of the cold start (otherwise empty
    arrays). ``n_hessians`` (n,) full diagonalisations + factorisations; ``n_fallbacks`` samples
    handed to ``invert_density``. ``kernel_cold_*``: the same chord kernel started from the cold
    reference (the control). ``tol`` 1/bohr.
    """

    v_ks: np.ndarray
    v_hxc: np.ndarray
    density: np.ndarray
    max_density_error: np.ndarray
    converged: np.ndarray
    n_iterations: np.ndarray
    seconds: np.ndarray
    start_max_density_error: np.ndarray
    cold_n_iterations: np.ndarray
    cold_seconds: np.ndarray
    cold_max_density_error: np.ndarray
    tol: float
    cpu_seconds: np.ndarray
    cold_cpu_seconds: np.ndarray
    n_hessians: np.ndarray
    n_fallbacks: int
    kernel_cold_n_iterations: np.ndarray
    kernel_cold_cpu_seconds: np.ndarray
    kernel_cold_max_density_error: np.ndarray

    @property
    def speedup(self) -> float:
        """Median cold-start seconds / median FNO-started seconds (nan without a cold run)."""
        if not len(self.cold_seconds):
            return float("nan")
        return float(np.median(self.cold_seconds) / np.median(self.seconds))

    @property
    def cpu_speedup(self) -> float:
        """As :attr:`speedup`, in CPU time (nan without a cold run)."""
        if not len(self.cold_cpu_seconds):
            return float("nan")
        return float(np.median(self.cold_cpu_seconds) / np.median(self.cpu_seconds))


def _occupations(model: Any, n_electrons: int | None, spin: str | None) -> tuple[int, str, np.ndarray]:
    from matterflow.dft1d.exact import occupations_for

    n = int(n_electrons if n_electrons is not None else getattr(model, "n_electrons", 2))
    s = spin if spin is not None else getattr(model, "spin", "unpolarised")
    if s not in ("unpolarised", "polarised"):
        raise InputError(f"spin: accepted 'unpolarised', 'polarised'; got {s!r}")
    return n, s, occupations_for(n, s)


def _check_batch(model: Any, density: np.ndarray, v_ext: np.ndarray, x: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    model._check_fitted()
    d = np.atleast_2d(np.asarray(density, dtype=float))
    v = np.atleast_2d(np.asarray(v_ext, dtype=float))
    x = np.asarray(x, dtype=float)
    if d.shape != v.shape or d.shape[1] != len(x):
        raise InputError(f"density {d.shape}, v_ext {v.shape} and x {x.shape}: need "
                         f"(n_samples, n_points) twice and (n_points,)")
    if d.shape[1] != model.n_points_:
        raise InputError(f"density: the model was trained on {model.n_points_} grid points; "
                         f"got {d.shape[1]}")
    return d, v, x


def _fno_v_ks(model: Any, density: np.ndarray, v_ext: np.ndarray) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    pred = model.predict(density)
    per = (time.perf_counter() - t0) / len(density)
    return (pred + v_ext if model.target == "v_hxc" else pred), per


def fno_reliability(model: Any, density: np.ndarray, v_ext: np.ndarray, x: np.ndarray, *,
                    threshold: float = 0.02, gap_threshold: float | None = None,
                    n_electrons: int | None = None,
                    spin: Literal["unpolarised", "polarised"] | None = None,
                    stencil: int = 5) -> FNOReliability:
    """The FNO's potentials for ``density`` (n, n_points) with a per-sample error bar.

    One KS solve per sample (lowest ``n_occ + 1`` levels of ``v_ext + v_Hxc,pred``) gives
    the density residual and the gap; ``flagged = residual > threshold`` (or ``gap <
    gap_threshold`` Ha when given). Occupations default to the model's.
    """
    from matterflow.dft1d.exact import solve_noninteracting

    if not threshold > 0:
        raise InputError(f"threshold: a relative density residual > 0; got {threshold!r}")
    d, v, x = _check_batch(model, density, v_ext, x)
    _, _, occ = _occupations(model, n_electrons, spin)
    v_ks, per = _fno_v_ks(model, d, v)
    t0 = time.perf_counter()
    dens, gaps = np.empty_like(d), np.empty(len(d))
    for i, vi in enumerate(v_ks):
        st = solve_noninteracting(vi, x, occ, stencil=stencil, n_states=len(occ) + 1)
        dens[i] = st.density
        gaps[i] = st.energies[len(occ)] - st.energies[len(occ) - 1]
    check = (time.perf_counter() - t0) / len(d)
    resid = np.abs(dens - d).sum(axis=1) / d.sum(axis=1)
    flagged = resid > threshold
    if gap_threshold is not None:
        flagged = flagged | (gaps < gap_threshold)
    return FNOReliability(v_ks=v_ks, predicted_density=dens, density_residual=resid,
                          max_density_error=np.abs(dens - d).max(axis=1), gap=gaps,
                          flagged=flagged, threshold=float(threshold),
                          gap_threshold=float("nan") if gap_threshold is None else float(gap_threshold),
                          fno_seconds_per_sample=per, check_seconds_per_sample=check)


class _Grid:
    """Matrices shared by all samples on one grid (built once per :func:`refine_inversion`)."""

    def __init__(self, x: np.ndarray, stencil: int, softening: float, regularisation: float):
        from matterflow.dft1d.grid import as_grid, kinetic_matrix, softened_coulomb

        g = as_grid(x)
        self.n, self.dx = g.n_points, g.dx
        self.kin = kinetic_matrix(g, stencil).toarray()
        self.w = softened_coulomb(g.x[:, None] - g.x[None, :], softening) * g.dx
        d = (np.eye(self.n, k=1) - np.eye(self.n))[:-1] / g.dx
        self.dtd = d.T @ d
        self.lam = float(regularisation)
        self.ones = np.ones(self.n) / np.sqrt(self.n)
        # the Hamiltonian is banded (finite-difference stencil): LAPACK's banded eigensolver
        # (upper form) is 1.3x (all levels) to 2x (occupied levels only) faster than dense
        self.band = (stencil - 1) // 2
        self.ab = np.zeros((self.band + 1, self.n))
        for k in range(self.band + 1):
            self.ab[self.band - k, k:] = np.diag(self.kin, k)


def _chord_newton(target: np.ndarray, v_ext: np.ndarray, v_start: np.ndarray | None,
                  occ: np.ndarray, n_electrons: int, grid: _Grid, tol: float, max_iter: int
                  ) -> tuple[np.ndarray, np.ndarray, float, int, int, float, bool]:
    """Chord Newton on the Wu–Yang functional from ``v_start`` (None: the reference ``v0``).

    Returns ``(v_ks, density, max error, steps, hessian builds, start error, converged)``;
    ``converged`` False means "no ascent with a fresh Hessian" (the caller falls back).
    """
    import scipy.linalg as sla

    from matterflow.dft1d.inversion import ks_response

    g, k = grid, len(occ)
    dx, lam = g.dx, g.lam
    v0 = v_ext + (1.0 - 1.0 / n_electrons) * (g.w @ target)
    vb = np.zeros(g.n) if v_start is None else v_start - v0
    vb = vb - vb.mean()

    def w_of(e_occ: np.ndarray, vb_: np.ndarray) -> float:
        return float(occ @ e_occ - np.sum((v0 + vb_) * target) * dx - lam * vb_ @ g.dtd @ vb_ * dx)

    def band(vb_: np.ndarray) -> np.ndarray:
        ab = g.ab.copy()
        ab[g.band] += v0 + vb_
        return ab

    def full(vb_: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        e, phi = sla.eig_banded(band(vb_), check_finite=False)
        phi = phi / np.sqrt(dx)
        return e, phi, (phi[:, :k] ** 2) @ occ

    def partial(vb_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, phi = sla.eig_banded(band(vb_), select="i", select_range=(0, k - 1), check_finite=False)
        return e, (phi ** 2 / dx) @ occ

    def factor(e: np.ndarray, phi: np.ndarray) -> Any:
        neg = -(ks_response(e, phi, occ, dx) * dx - 2 * lam * g.dtd * dx)
        neg += np.outer(g.ones, g.ones) * float(np.abs(neg).max())
        try:
            return ("cho", sla.cho_factor(neg, check_finite=False))
        except (sla.LinAlgError, ValueError):
            return ("lu", sla.lu_factor(neg, check_finite=False))

    def solve(fac: Any, rhs: np.ndarray) -> np.ndarray:
        kind, f = fac
        step = sla.cho_solve(f, rhs, check_finite=False) if kind == "cho" else \
            sla.lu_solve(f, rhs, check_finite=False)
        return step - g.ones * (g.ones @ step)

    e, phi, dens = full(vb)
    err = start_err = float(np.abs(dens - target).max())
    w = w_of(e[:k], vb)
    steps, builds, fresh, fac = 0, 0, True, None
    while err > tol and steps < max_iter:
        if fac is None:
            if not fresh:
                e, phi, dens = full(vb)
            fac, builds, fresh = factor(e, phi), builds + 1, True
        grad = (dens - target) * dx - 2 * lam * (g.dtd @ vb) * dx
        step = solve(fac, grad)
        accepted = False
        for alpha in (1.0, 0.5, 0.25):
            e_new, dens_new = partial(vb + alpha * step)
            w_new = w_of(e_new, vb + alpha * step)
            if w_new >= w - 1e-13 * max(1.0, abs(w)):
                accepted = True
                break
        steps += 1
        if not accepted:
            if fresh:  # no ascent even with the exact Hessian here: hand over
                return v0 + vb, dens, err, steps, builds, start_err, False
            fac = None
            continue
        err_new = float(np.abs(dens_new - target).max())
        vb, dens, w = vb + alpha * step, dens_new, w_new
        fresh = False
        if err_new > 0.25 * err:  # slow contraction: rebuild the Hessian at the new point
            fac = None
        err = err_new
    vb = vb - 0.5 * (vb[0] + vb[-1])
    return v0 + vb, dens, err, steps, builds, start_err, err <= tol


def refine_inversion(model: Any, density: np.ndarray, v_ext: np.ndarray, x: np.ndarray, *,
                     tol: float = 1e-6, max_iter: int = 200, regularisation: float = 1e-9,
                     softening: float = 1.0, stencil: int = 5, n_electrons: int | None = None,
                     spin: Literal["unpolarised", "polarised"] | None = None,
                     compare_cold: bool = False,
                     on_failure: Literal["raise", "warn"] = "raise") -> RefinedInversion:
    """Invert ``density`` (n, n_points) exactly, starting Newton from the FNO's potential.

    The FNO predicts all potentials in one batch (its time is shared out per sample), then
    each sample is refined to ``tol`` with the chord Newton kernel of the module docstring
    (handed to :func:`~matterflow.dft1d.inversion.invert_density` with ``v_start`` when it
    stalls). ``compare_cold`` also inverts each density from the
    cold start (``invert_density(guess="reference")``) right after, and with the same kernel
    from the reference (the control), for iterations and seconds in the same run.
    A sample that does not reach ``tol`` even on the fallback path raises ComputeError
    (``on_failure="raise"``) or warns and is marked ``converged=False``.
    """
    from matterflow.dft1d.inversion import invert_density

    if not tol > 0:
        raise InputError(f"tol: max |n_KS - n| in 1/bohr, > 0; got {tol!r}")
    d, v, x = _check_batch(model, density, v_ext, x)
    n_el, sp, _ = _occupations(model, n_electrons, spin)
    c0 = time.process_time()
    v_start, per = _fno_v_ks(model, d, v)
    cpu_per = (time.process_time() - c0) / len(d)
    kw: dict[str, Any] = {"n_electrons": n_el, "spin": sp, "stencil": stencil,
                          "softening": softening, "regularisation": regularisation, "tol": tol,
                          "max_iter": max_iter, "on_failure": on_failure}
    from matterflow.dft1d.grid import as_grid, check_density

    grid = _Grid(x, stencil, softening, regularisation)
    _, _, occ = _occupations(model, n_electrons, spin)
    res, cold, cpu, cold_cpu, kcold = [], [], [], [], []
    n_fallbacks = 0
    for i in range(len(d)):  # interleaved, so that all see the same machine load
        c0, t0 = time.process_time(), time.perf_counter()
        target = check_density(d[i], as_grid(x), n_el)
        v_ks, dens, err, steps, builds, err0, ok = _chord_newton(
            target, v[i], v_start[i], occ, n_el, grid, tol, max_iter)
        if not ok:  # the robust path, from where the chord iterations stopped
            n_fallbacks += 1
            r = invert_density(d[i], v[i], x, v_start=v_ks, **kw)
            v_ks, dens, err, steps = r.v_ks, r.density, r.max_density_error, steps + r.n_iterations
        res.append((v_ks, dens, err, steps, builds, err0, time.perf_counter() - t0 + per))
        cpu.append(time.process_time() - c0 + cpu_per)
        if compare_cold:
            c0 = time.process_time()
            cold.append(invert_density(d[i], v[i], x, guess="reference", **kw))
            cold_cpu.append(time.process_time() - c0)
            c0 = time.process_time()
            kc = _chord_newton(check_density(d[i], as_grid(x), n_el), v[i], None, occ, n_el,
                               grid, tol, max_iter)
            kcold.append((kc[3], time.process_time() - c0, kc[2] if kc[6] else float("nan")))
    empty = np.zeros(0)
    return RefinedInversion(
        v_ks=np.stack([r[0] for r in res]), v_hxc=np.stack([r[0] for r in res]) - v,
        density=np.stack([r[1] for r in res]),
        max_density_error=np.array([r[2] for r in res]),
        converged=np.array([r[2] <= tol for r in res]),
        n_iterations=np.array([r[3] for r in res]), n_hessians=np.array([r[4] for r in res]),
        seconds=np.array([r[6] for r in res]), n_fallbacks=n_fallbacks,
        start_max_density_error=np.array([r[5] for r in res]),
        kernel_cold_n_iterations=np.array([c[0] for c in kcold]) if kcold else empty,
        kernel_cold_cpu_seconds=np.array([c[1] for c in kcold]) if kcold else empty,
        kernel_cold_max_density_error=np.array([c[2] for c in kcold]) if kcold else empty,
        cpu_seconds=np.array(cpu), cold_cpu_seconds=np.array(cold_cpu) if cold else empty,
        cold_n_iterations=np.array([r.n_iterations for r in cold]) if cold else empty,
        cold_seconds=np.array([r.seconds for r in cold]) if cold else empty,
        cold_max_density_error=np.array([r.max_density_error for r in cold]) if cold else empty,
        tol=float(tol))
