"""A learned inversion that is never silently wrong: FNO start + exact Wu–Yang refinement.

Two tools on top of a trained :class:`matterflow.dft1d.fno.DensityToPotentialFNO`:

* :func:`fno_reliability` — the FNO alone, with its own error bar per sample: the density
  that its predicted potential produces (one KS diagonalisation) is compared with the input
  density (``density_residual = ∫|n[v_pred] - n| dx / N``, the figure the FNO is scored by,
  known without the exact potential because the target density *is* the input), and the gap
  between the highest occupied and the next KS level of that potential (a small gap means a
  density hypersensitive to the potential). Samples whose residual exceeds ``threshold`` (or
  whose gap is below ``gap_threshold``, if given) are flagged.
* :func:`refine_inversion` — the FNO's potential starts the regularised Wu–Yang Newton
  inversion (:func:`matterflow.dft1d.inversion.invert_density` with ``v_start``), which runs
  to ``tol`` (max |n_KS - n|, default 1e-6 /bohr): the answer is the numerical inversion's,
  the network only buys iterations. With ``compare_cold`` the same densities are also
  inverted from the cold start (``guess="reference"``, the Fermi–Amaldi reference; the
  general Wu–Yang path) in the same run, and the iterations and seconds of both are kept.

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
    Newton iterations. ``start_max_density_error`` (n,): max |n[v_FNO] - n| before refining.
    With ``compare_cold``: ``cold_n_iterations``, ``cold_seconds``, ``cold_max_density_error``
    (n,) of the cold start (otherwise empty arrays). ``tol`` 1/bohr.
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

    @property
    def speedup(self) -> float:
        """Median cold-start seconds / median FNO-started seconds (nan without a cold run)."""
        if not len(self.cold_seconds):
            return float("nan")
        return float(np.median(self.cold_seconds) / np.median(self.seconds))


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


def refine_inversion(model: Any, density: np.ndarray, v_ext: np.ndarray, x: np.ndarray, *,
                     tol: float = 1e-6, max_iter: int = 200, regularisation: float = 1e-9,
                     softening: float = 1.0, stencil: int = 5, n_electrons: int | None = None,
                     spin: Literal["unpolarised", "polarised"] | None = None,
                     compare_cold: bool = False,
                     on_failure: Literal["raise", "warn"] = "raise") -> RefinedInversion:
    """Invert ``density`` (n, n_points) exactly, starting Newton from the FNO's potential.

    The FNO predicts all potentials in one batch (its time is shared out per sample), then
    each sample runs :func:`~matterflow.dft1d.inversion.invert_density` (``v_start``) to
    ``tol``. ``compare_cold`` also inverts each density from the cold start
    (``guess="reference"``) right after, for iterations and seconds in the same run.
    An inversion that does not reach ``tol`` raises ComputeError (``on_failure="raise"``)
    or warns and is marked ``converged=False``.
    """
    from matterflow.dft1d.inversion import invert_density

    if not tol > 0:
        raise InputError(f"tol: max |n_KS - n| in 1/bohr, > 0; got {tol!r}")
    d, v, x = _check_batch(model, density, v_ext, x)
    n_el, sp, occ = _occupations(model, n_electrons, spin)
    v_start, per = _fno_v_ks(model, d, v)
    kw: dict[str, Any] = {"n_electrons": n_el, "spin": sp, "stencil": stencil,
                          "softening": softening, "regularisation": regularisation, "tol": tol,
                          "max_iter": max_iter, "on_failure": on_failure}
    from matterflow.dft1d.grid import as_grid, kinetic_matrix

    kin = kinetic_matrix(as_grid(x), stencil).toarray()
    dx = float(x[1] - x[0])
    res, cold, start_err = [], [], np.empty(len(d))
    for i in range(len(d)):
        h = kin + np.diag(v_start[i])
        _, phi = np.linalg.eigh(h)
        n0 = (phi[:, : len(occ)] ** 2 / dx) @ occ
        start_err[i] = float(np.abs(n0 - d[i]).max())
        res.append(invert_density(d[i], v[i], x, v_start=v_start[i], **kw))
        if compare_cold:
            cold.append(invert_density(d[i], v[i], x, guess="reference", **kw))
    empty = np.zeros(0)
    return RefinedInversion(
        v_ks=np.stack([r.v_ks for r in res]), v_hxc=np.stack([r.v_hxc for r in res]),
        density=np.stack([r.density for r in res]),
        max_density_error=np.array([r.max_density_error for r in res]),
        converged=np.array([r.converged for r in res]),
        n_iterations=np.array([r.n_iterations for r in res]),
        seconds=np.array([r.seconds + per for r in res]), start_max_density_error=start_err,
        cold_n_iterations=np.array([r.n_iterations for r in cold]) if cold else empty,
        cold_seconds=np.array([r.seconds for r in cold]) if cold else empty,
        cold_max_density_error=np.array([r.max_density_error for r in cold]) if cold else empty,
        tol=float(tol))
