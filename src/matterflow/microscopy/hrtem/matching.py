"""Matching one HRTEM image: registration, lattice averaging, BoTorch BO, gradient refinement.

The physics the search uses:

- the thickness series costs one multislice, so every optics point is scored at all
  thicknesses at once and keeps the best (thickness is profiled out, not searched);
- the image of a crystal is periodic: the measured image is reduced to its lattice
  Fourier coefficients after registering rotation and scale on its Bragg peaks
  (:func:`~matterflow.microscopy.hrtem.model.register_lattice`), which averages the
  noise over every cell in view; the loss ``1 − NCC`` maximised over shifts is
  invariant to the image shift and an affine contrast (offset, gain);
- the BO searches ``log(1 − NCC)`` over the optics box (GP + LogEI, Sobol start); the
  loss has one deep valley along the defocus–Cs direction that keeps the phase of the
  strongest reflections, so the BO's best few points are refined by gradient steps
  through the differentiable CTF (multi-start), every step counted as an evaluation.

The default search (``method="scan"``, :func:`defocus_scan_search`) does not model the
loss with a GP: fine 1D defocus scans at a few (Cs, focal spread) cross every valley, and
multi-start L-BFGS-B from the deepest scan minima follows each valley to its own Cs and focal
spread (the BO of ``method="bo"`` finds the true valley in 3 of 10 held-out cases, the scan in
8; see docs/hrtem.md).

Parameters ``x`` are ``(defocus Å, Cs µm[, focal spread Å])``: with the focal spread fitted
(``MatchParams.focal_spread=None``) it is a third coordinate of the BO, the random and grid
searches and the gradient refinement (the temporal envelope is differentiable); the valley
scan stays in the (defocus, Cs) plane at the start's focal spread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from matterflow.microscopy.hrtem.model import images, shift_ncc

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Objective", "bo_search", "random_search", "grid_search", "refine", "distinct_starts",
           "valley_search", "defocus_scan_search", "Trace"]


@dataclass
class Trace:
    """Every evaluation: parameters ``(n, d)``, loss ``(n,)`` and best thickness ``(n,)``."""

    x: list[np.ndarray] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    thickness: list[int] = field(default_factory=list)
    stage: list[str] = field(default_factory=list)

    def add(self, x: Sequence[float] | np.ndarray, loss: float, t: int, stage: str) -> None:
        self.x.append(np.asarray(x, dtype=float))
        self.loss.append(float(loss))
        self.thickness.append(int(t))
        self.stage.append(stage)

    def best(self) -> tuple[np.ndarray, float, int]:
        i = int(np.argmin(self.loss))
        return self.x[i], self.loss[i], self.thickness[i]

    def best_so_far(self) -> np.ndarray:
        """``(n, d + 1)``: the best point's parameters and thickness after each evaluation."""
        out, best = [], None
        for x, y, t in zip(self.x, self.loss, self.thickness, strict=True):
            if best is None or y < best[0]:
                best = (y, np.r_[x, t])
            out.append(best[1])
        return np.array(out)


class Objective:
    """``1 − max_shift NCC`` of the simulated thickness series against the lattice-averaged target.

    ``waves`` (n_t, nx, ny), ``pixel`` (dx, dy) Å, ``target`` (nx, ny); ``fixed`` optics
    (energy_ev, focal_spread, ...) not searched. ``log``: an
    :class:`~matterflow.microscopy.hrtem.evallog.EvalLog` that stores every evaluation and
    replays the stored ones (resume). ``scheduler``: where :meth:`many` runs independent
    points (:func:`matterflow.core.execute.map_calls`; None: here, or on the executor's
    workers inside a run).
    """

    def __init__(self, waves: torch.Tensor, pixel: tuple[float, float], target: np.ndarray | torch.Tensor, *,
                 energy_ev: float, focal_spread: float, trace: Trace | None = None,
                 log: Any = None, scheduler: Any = None, loss: str = "ncc"):
        self.waves, self.pixel, self.energy_ev = waves, pixel, energy_ev
        self.loss = loss  # "ncc", "ssim", "power", "ncc+power", "ncc+ssim": see score()
        self.target = torch.as_tensor(target, dtype=waves.real.dtype)
        self.focal_spread = focal_spread
        self.trace = trace if trace is not None else Trace()
        self.log, self.scheduler = log, scheduler
        self.replayed = 0

    def _optics(self, x):
        fs = x[2] if len(x) > 2 else self.focal_spread
        return {"defocus": x[0], "cs": x[1] * 1e4, "focal_spread": fs}

    def ncc(self, x: Sequence[float] | torch.Tensor) -> torch.Tensor:
        """NCC at every thickness, ``(n_t,)`` (differentiable in a tensor ``x``)."""
        return shift_ncc(images(self.waves, self.pixel, energy_ev=self.energy_ev,
                                **self._optics(x)), self.target)

    def score(self, x: Sequence[float] | torch.Tensor) -> torch.Tensor:
        """``1 − loss`` at every thickness, ``(n_t,)``: the NCC for ``loss="ncc"``; else one
        minus the loss named (:mod:`~matterflow.microscopy.hrtem.losses`; ``a+b`` the sum)."""
        if self.loss == "ncc":
            return self.ncc(x)
        from matterflow.microscopy.hrtem import losses

        imgs = images(self.waves, self.pixel, energy_ev=self.energy_ev, **self._optics(x))
        fns = {"ncc": losses.ncc_loss, "ssim": losses.ssim_loss,
               "power": losses.power_spectrum_loss}
        total = sum(fns[name](imgs, self.target) for name in self.loss.split("+"))
        return 1 - total

    def profiled_log_loss(self, u: torch.Tensor, bounds: np.ndarray) -> torch.Tensor:
        """``log(1 − max_t NCC_t)`` at box-normalised ``u`` (float64 tensor, differentiable)."""
        x = torch.tensor(bounds[0]) + u * torch.tensor(bounds[1] - bounds[0])
        n = self.score(x.to(self.waves.real.dtype)).max()
        return torch.log(torch.clamp(1 - n.to(torch.float64), min=1e-9))

    # ---- the log: record, replay
    def _stored(self, x: np.ndarray, stage: str) -> dict | None:
        """The stored record of the next evaluation if it is this one; a different point
        means the search has left the stored path: the rest of the log is dropped."""
        if self.log is None:
            return None
        i = len(self.trace.loss)
        if i >= len(self.log.records):
            return None
        r = self.log.records[i]
        if r["stage"] == stage and np.array_equal(np.asarray(r["x"], dtype=float), x):
            self.replayed += 1
            return r
        self.log.truncate(i)
        return None

    def _record(self, x: np.ndarray, loss: float, t: int, stage: str,
                replayed: bool, **aux: Any) -> None:
        self.trace.add(x, loss, t, stage)
        if self.log is not None and not replayed:
            self.log.append({"x": [float(v) for v in x], "loss": float(loss), "thickness": int(t),
                             "stage": stage, **aux})

    def __call__(self, x: Sequence[float] | np.ndarray, stage: str = "bo") -> float:
        return self.many([x], stage)[0]

    def many(self, xs: Sequence[Sequence[float]] | np.ndarray, stage: str) -> list[float]:
        """Evaluate independent points (the stored ones from the log, the rest through
        :func:`~matterflow.core.execute.map_calls`); recorded in order; their losses."""
        xs = [np.asarray(x, dtype=float) for x in xs]
        out: list[float] = []
        k = 0
        while k < len(xs):  # the stored prefix
            r = self._stored(xs[k], stage)
            if r is None:
                break
            self._record(xs[k], r["loss"], r["thickness"], stage, True)
            out.append(float(r["loss"]))
            k += 1
        todo = xs[k:]
        if not todo:
            return out
        if len(todo) == 1:
            vals = [evaluate_point(self, todo[0])]
        else:
            from matterflow.core.execute import map_calls

            state = (self.waves, self.pixel, self.target, self.energy_ev, self.focal_spread,
                     self.loss)
            vals = map_calls(_evaluate_remote, [(state, x) for x in todo],
                             scheduler=self.scheduler)
        for x, (loss, t) in zip(todo, vals, strict=True):
            self._record(x, loss, t, stage, False)
            out.append(loss)
        return out

    def log_loss_and_grad(self, u: np.ndarray, bounds: np.ndarray,
                          stage: str = "refine") -> tuple[float, np.ndarray]:
        """``log(1 − max_t NCC_t)`` at box-normalised ``u`` and its gradient (autograd through
        the CTF); one evaluation, recorded (with the gradient, so that it replays)."""
        lo, span = bounds[0], bounds[1] - bounds[0]
        x = lo + np.asarray(u, dtype=float) * span
        r = self._stored(x, stage)
        if r is not None:
            self._record(x, r["loss"], r["thickness"], stage, True)
            return float(r["f"]), np.asarray(r["g"], dtype=float)
        ut = torch.tensor(u, dtype=torch.float64, requires_grad=True)
        xt = torch.tensor(lo) + ut * torch.tensor(span)
        n = self.score(xt.to(self.waves.real.dtype))
        t = int(torch.argmax(n.detach()))
        f = torch.log(torch.clamp(1 - n.max().to(torch.float64), min=1e-9))
        f.backward()
        g = ut.grad.detach().numpy().copy()
        loss = max(1.0 - float(n[t].detach()), 1e-9)
        self._record(x, loss, t + 1, stage, False, f=float(f.detach()), g=[float(v) for v in g])
        return float(f.detach()), g

    def log_loss_hessian(self, x0: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """Hessian of :meth:`profiled_log_loss` at ``x0`` (box-normalised coordinates);
        counted as two evaluations at ``x0`` (stage ``hessian``), stored with them."""
        lo, span = bounds[0], bounds[1] - bounds[0]
        x0 = np.asarray(x0, dtype=float)
        r = self._stored(x0, "hessian")
        if r is not None and "h" in r:
            self._record(x0, r["loss"], r["thickness"], "hessian", True)
            h = np.asarray(r["h"], dtype=float)
        else:
            u0 = np.clip((x0 - lo) / span, 0, 1)
            h = torch.autograd.functional.hessian(
                lambda u: self.profiled_log_loss(u, bounds),
                torch.tensor(u0, dtype=torch.float64)).numpy()
            loss, t = evaluate_point(self, x0)
            self._record(x0, loss, t, "hessian", False, h=h.tolist())
        self(x0, "hessian")
        return h


def evaluate_point(obj: Objective, x: np.ndarray) -> tuple[float, int]:
    """``(1 − max_t NCC_t, best thickness in repeats)`` at optics ``x`` (not recorded)."""
    with torch.no_grad():
        n = obj.score([float(v) for v in x])
    t = int(torch.argmax(n))
    return max(1.0 - float(n[t]), 1e-9), t + 1


def _evaluate_remote(state: tuple, x: np.ndarray) -> tuple[float, int]:
    waves, pixel, target, energy_ev, focal_spread, loss = state
    return evaluate_point(Objective(waves, pixel, target, energy_ev=energy_ev,
                                    focal_spread=focal_spread, loss=loss), x)


def _sobol(bounds: np.ndarray, n: int, seed: int) -> np.ndarray:
    eng = torch.quasirandom.SobolEngine(bounds.shape[1], scramble=True, seed=seed)
    return bounds[0] + (bounds[1] - bounds[0]) * eng.draw(n).double().numpy()


def bo_search(obj: Objective, bounds: np.ndarray, n_evals: int, *, n_init: int, seed: int,
              q: int = 1) -> None:
    """GP (Matérn-5/2 ARD, inputs normalised to the box) + (q)LogEI on ``log loss``; Sobol start."""
    from botorch.acquisition import LogExpectedImprovement, qLogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(seed)
    d = bounds.shape[1]
    start = len(obj.trace.loss)
    obj.many(_sobol(bounds, min(n_init, n_evals), seed), "sobol")
    b = torch.tensor(bounds, dtype=torch.float64)
    while len(obj.trace.loss) - start < n_evals:
        x = torch.tensor(np.array(obj.trace.x[start:]), dtype=torch.float64)
        y = -torch.log(torch.tensor(obj.trace.loss[start:], dtype=torch.float64))[:, None]
        gp = SingleTaskGP(x, y, input_transform=Normalize(d, bounds=b),
                          outcome_transform=Standardize(m=1))
        try:
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
        except Exception:  # noqa: BLE001  (a failed hyper-parameter fit keeps the prior's)
            pass
        qq = min(q, n_evals - (len(obj.trace.loss) - start))
        acq = (LogExpectedImprovement(gp, best_f=y.max()) if qq == 1
               else qLogExpectedImprovement(gp, best_f=y.max()))
        cand, _ = optimize_acqf(acq, bounds=b, q=qq, num_restarts=4, raw_samples=256)
        obj.many(cand.numpy(), "bo")


def random_search(obj: Objective, bounds: np.ndarray, n_evals: int, *, seed: int) -> None:
    """Uniform random points in the box (the baseline)."""
    rng = np.random.default_rng(seed)
    obj.many(bounds[0] + (bounds[1] - bounds[0]) * rng.random((n_evals, bounds.shape[1])),
             "random")


def grid_search(obj: Objective, bounds: np.ndarray, n_evals: int) -> None:
    """A regular grid of about ``n_evals`` points (cell centres; the baseline)."""
    d = bounds.shape[1]
    m = max(1, int(n_evals ** (1 / d) + 1e-9))  # m^d <= n_evals
    axes = [bounds[0, i] + (np.arange(m) + 0.5) / m * (bounds[1, i] - bounds[0, i])
            for i in range(d)]
    obj.many(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d), "grid")


def refine(obj: Objective, bounds: np.ndarray, x0: np.ndarray, steps: int) -> None:
    """L-BFGS-B on the thickness-profiled ``log(1 − max_t NCC_t)`` with exact gradients
    through the differentiable CTF, in box-normalised coordinates within the box; at most
    ``steps`` function-and-gradient evaluations, each counted."""
    from scipy.optimize import minimize

    lo, span = bounds[0], bounds[1] - bounds[0]

    def fun(u):
        return obj.log_loss_and_grad(u, bounds)

    u0 = np.clip((np.asarray(x0, dtype=float) - lo) / span, 0, 1)
    minimize(fun, u0, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(u0),
             options={"maxfun": steps, "maxiter": steps})


def valley_search(obj: Objective, bounds: np.ndarray, x0: np.ndarray, n_points: int, *,
                  dims: int | None = None) -> None:
    """Scan the loss valley through ``x0``: its direction is the Hessian's softest eigenvector
    (autograd through the CTF, in box-normalised coordinates), and ``n_points`` evaluations are
    spread along that straight line across the box. ``dims``: the valley lies in the plane of
    the first ``dims`` parameters (defocus, Cs), the others (the focal spread) kept at ``x0``
    (default: all parameters).

    Physics: the image is most sensitive to the phase χ at its strongest high-order
    reflections, ``χ(g) = −πλg²Δf + ½πλ³g⁴Cs``, which is linear in (Δf, Cs): a constant
    phase is a straight line, so the valley is straight and spans the box. The Hessian
    costs about two evaluations and is counted as two.
    """
    lo, span = bounds[0], bounds[1] - bounds[0]

    u0 = np.clip((np.asarray(x0, dtype=float) - lo) / span, 0, 1)
    h = obj.log_loss_hessian(x0, bounds)
    k = len(u0) if dims is None else dims
    v = np.zeros(len(u0))
    v[:k] = np.linalg.eigh(0.5 * (h[:k, :k] + h[:k, :k].T))[1][:, 0]
    # the segment of the line u0 + s v inside the unit box
    with np.errstate(divide="ignore"):
        nz = v != 0
        a = np.where(nz, (0 - u0) / np.where(nz, v, 1), -np.inf)
        b = np.where(nz, (1 - u0) / np.where(nz, v, 1), np.inf)
    s_lo, s_hi = np.max(np.minimum(a, b)), np.min(np.maximum(a, b))
    obj.many([lo + np.clip(u0 + s * v, 0, 1) * span for s in np.linspace(s_lo, s_hi, n_points)],
             "valley")


def distinct_starts(trace: Trace, bounds: np.ndarray, k: int,
                    min_dist: float = 0.08) -> list[tuple[np.ndarray, int]]:
    """The ``k`` best evaluated points at least ``min_dist`` apart (box-normalised)."""
    order = np.argsort(trace.loss)
    span = bounds[1] - bounds[0]
    chosen: list[int] = []
    for i in order:
        u = (trace.x[i] - bounds[0]) / span
        if all(np.linalg.norm(u - (trace.x[j] - bounds[0]) / span) > min_dist for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return [(trace.x[i], trace.thickness[i]) for i in chosen]


def defocus_scan_search(obj: Objective, bounds: np.ndarray, n_evals: int, *,
                        cs_fractions: Sequence[float] = (0.25, 0.75),
                        focal_spread_fractions: Sequence[float] = (0.2, 0.55),
                        n_starts: int = 12, start_steps: int = 12, final_starts: int = 2,
                        refine_loss: str | None = None) -> None:
    """The valley-seeded multi-start search (``method="scan"``), at most ``n_evals`` evaluations.

    1. **Defocus scans**: fine 1D scans across the whole defocus range (≈ 58 % of the budget)
       at a few Cs values (``cs_fractions`` of the Cs range) and, when the focal spread is
       fitted (``bounds`` with 3 columns), a few focal spreads (``focal_spread_fractions``);
       the thickness is profiled at every point (one CTF pass scores the whole series).
       The loss valleys of constant phase at the strong reflections run nearly along Cs
       (≈ 1–3 Å/µm) and are ≈ 10 Å wide in defocus, so a scan with a few-Å step crosses every
       valley, the true one included, however many thickness–defocus valleys compete.
    2. **Valley starts**: the ``n_starts`` deepest local minima of the scans (distinct), each
       refined by ``start_steps`` L-BFGS-B steps with exact gradients through the CTF in all
       coordinates (defocus, Cs and the focal spread): the step along the valley finds its
       Cs, the focal spread moves to the valley's own.
    3. **Final refinement**: L-BFGS-B from the ``final_starts`` best distinct points with the
       rest of the budget.

    Every scan point, gradient and line-search step is one evaluation (a CTF pass over the
    thickness series; the series itself is one multislice pass, made once). ``refine_loss``:
    the loss of stages 2–3 (default: the objective's); the scans use the objective's.
    """
    d = bounds.shape[1]
    start = len(obj.trace.loss)
    cs_vals = [bounds[0, 1] + f * (bounds[1, 1] - bounds[0, 1]) for f in cs_fractions]
    fs_vals = ([bounds[0, 2] + f * (bounds[1, 2] - bounds[0, 2]) for f in focal_spread_fractions]
               if d > 2 else [None])
    n_lines = len(cs_vals) * len(fs_vals)
    n_d = max(2, int(round(0.58 * n_evals / n_lines)))
    while n_lines * n_d > n_evals and n_d > 2:
        n_d -= 1
    defoci = np.linspace(bounds[0, 0], bounds[1, 0], n_d)
    cands: list[tuple[float, np.ndarray]] = []
    for fs in fs_vals:
        for cs in cs_vals:
            if len(obj.trace.loss) - start + n_d > n_evals:
                break
            pts = [np.array([df, cs] if fs is None else [df, cs, fs]) for df in defoci]
            ls = np.array(obj.many(pts, "scan"))
            for i in range(n_d):  # local minima along the line
                if ls[i] <= ls[max(i - 1, 0)] and ls[i] <= ls[min(i + 1, n_d - 1)]:
                    cands.append((float(ls[i]), pts[i]))
    cands.sort(key=lambda c: c[0])
    step = (bounds[1, 0] - bounds[0, 0]) / max(n_d - 1, 1)
    chosen: list[np.ndarray] = []
    k_max = max(1, min(n_starts, int(0.2 * n_evals) // max(start_steps, 1)))
    for _, p in cands:
        if all(abs(p[0] - q[0]) >= 2 * step - 1e-9 or np.any(np.abs(p[1:] - q[1:]) > 1e-9)
               for q in chosen):
            chosen.append(p)
        if len(chosen) == k_max:
            break

    def left() -> int:
        return n_evals - (len(obj.trace.loss) - start)

    if refine_loss is not None:
        obj.loss = refine_loss

    for p in chosen:
        steps = min(start_steps, left())
        if steps > 0:
            refine(obj, bounds, p, steps)
    sub = Trace()
    for xi, li, ti, si in zip(obj.trace.x[start:], obj.trace.loss[start:],
                              obj.trace.thickness[start:], obj.trace.stage[start:], strict=True):
        if si == "refine" or refine_loss is None:
            sub.add(xi, li, ti, si)
    if not sub.loss:  # no refinement fitted in the budget: the scan's best
        sub = Trace(obj.trace.x[start:], obj.trace.loss[start:], obj.trace.thickness[start:],
                    obj.trace.stage[start:])
    finals = distinct_starts(sub, bounds, final_starts, 0.05)
    for k, (x0, _) in enumerate(finals):
        steps = left() // (len(finals) - k)
        if steps > 0:
            refine(obj, bounds, x0, steps)
