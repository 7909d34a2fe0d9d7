"""Log-likelihoods of model parameters: our vectorised one and ESPEI's.

``FastLikelihood`` scores phase-equilibrium (ZPF) tie-lines and activities
with :class:`~matterflow.calphad.engine.BinaryModel` (all temperatures of the
data in one compiled call). It follows ESPEI's ZPF error model: at each
tie-line a *target hyperplane* (chemical potentials) is the mean of the
tangents of the phases at their measured compositions; each phase's driving
force against it is Normal(0, ``sigma_zpf``) (1000 J/mol as in ESPEI). For a
phase with unknown composition the driving force is the largest over its
compositions; a phase with a single composition (a line compound) does not
define a tangent and only gets a driving force. A single-phase observation
(one phase with its composition) penalises every other phase that lies below
its tangent (one-sided; ESPEI gives such points no weight). Activities are
Normal with ``sigma_activity``.

``EspeiLikelihood`` calls ESPEI's own likelihood (all data types, including
thermochemical data) through ``espei.error_functions.context.setup_context``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from matterflow.calphad.engine import R_GAS, BinaryModel, lower_hull_sorted
from matterflow.core.errors import InputError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from pycalphad import Database
    from tinydb import TinyDB

    from matterflow.calphad.datasets import ActivityPoint, ZPFPoint

__all__ = ["FastLikelihood", "EspeiLikelihood", "LogPosterior", "EspeiPriorLogPosterior"]


class FastLikelihood:
    """Vectorised ZPF + activity log-likelihood of a binary model.

    Parameters
    ----------
    model : BinaryModel
    zpf : list of ZPFPoint
    activities : list of ActivityPoint
    sigma_zpf : float
        Driving-force standard deviation, J/mol.
    sigma_activity : float
        Activity standard deviation (dimensionless).
    aliases : dict
        Dataset phase name -> model phase name (``{"LAVES_C15": "CU2MG"}``).
    """

    def __init__(self, model: BinaryModel, zpf: Sequence[ZPFPoint] = (),
                 activities: Sequence[ActivityPoint] = (), sigma_zpf: float = 1000.0,
                 sigma_activity: float = 0.05, aliases: dict[str, str] | None = None) -> None:
        self.model = model
        self.sigma_zpf = float(sigma_zpf)
        self.sigma_activity = float(sigma_activity)
        aliases = {k.upper(): v.upper() for k, v in (aliases or {}).items()}
        self.zpf = []
        for pt in zpf:
            names = tuple(aliases.get(p, p) for p in pt.phases)
            for nm in names:
                if nm not in model.phases:
                    raise InputError(f"{pt.source}: phase {nm!r} is not in the model "
                                     f"({', '.join(model.phases)}); map it with aliases")
            self.zpf.append((pt.temperature_k, names, pt.x))
        self.activities = list(activities)
        if not self.zpf and not self.activities:
            raise InputError("no phase-equilibrium (ZPF) or activity data to fit")
        temps = [z[0] for z in self.zpf] + [a.temperature_k for a in self.activities] + \
            [a.ref_temperature_k for a in self.activities]
        model.check_temperature(temps)
        self.temperatures = np.unique(np.asarray(temps, dtype=float))
        self._t_index = {t: i for i, t in enumerate(self.temperatures)}
        # per phase: indices of its points sorted by x
        self._phase_idx = []
        for k in range(len(model.phases)):
            idx = np.where(model.phase_all == k)[0]
            self._phase_idx.append(idx[np.argsort(model.x_all[idx], kind="stable")])
        self.n_evaluations = 0

    def _phase_curve(self, k, g_row):
        """Lower envelope (x, g) of phase k over its internal degrees of freedom."""
        idx = self._phase_idx[k]
        x = self.model.x_all[idx]
        g = g_row[idx]
        h = lower_hull_sorted(x, g, np.arange(len(x)))
        return x[h], g[h]

    def residuals(self, params: ArrayLike) -> np.ndarray:
        """Standardised residuals (driving forces / sigma, activity errors / sigma)."""
        g = self.model.energies(self.temperatures, params)
        curves: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

        def curve(ti, k):
            key = (ti, k)
            if key not in curves:
                curves[key] = self._phase_curve(k, g[ti])
            return curves[key]

        res = []
        phases = self.model.phases
        for t, names, xs in self.zpf:
            ti = self._t_index[t]
            tangents = []
            for nm, x in zip(names, xs, strict=False):
                if np.isnan(x):
                    continue
                cx, cg = curve(ti, phases.index(nm))
                if len(cx) < 2:
                    continue
                k = int(np.clip(np.searchsorted(cx, x), 1, len(cx) - 1))
                slope = (cg[k] - cg[k - 1]) / (cx[k] - cx[k - 1])
                gx = cg[k - 1] + slope * (x - cx[k - 1])
                tangents.append((gx - x * slope, gx + (1 - x) * slope))
            if not tangents:
                continue  # as ESPEI: a tie-line without any composition gives no hyperplane
            mu_a, mu_b = np.mean(tangents, axis=0)
            if len(names) == 1:
                # a single-phase observation: no other phase may lie below its tangent
                # (one-sided; an extension of ESPEI's ZPF error, which ignores such points)
                for k in range(len(phases)):
                    if phases[k] == names[0]:
                        continue
                    cx, cg = curve(ti, k)
                    df = float(np.max(mu_a * (1 - cx) + mu_b * cx - cg))
                    res.append(max(df, 0.0) / self.sigma_zpf)
                continue
            for nm, x in zip(names, xs, strict=False):
                cx, cg = curve(ti, phases.index(nm))
                plane = mu_a * (1 - cx) + mu_b * cx
                if np.isnan(x) or len(cx) == 1:
                    df = float(np.max(plane - cg))  # best driving force of the phase
                else:
                    gx = np.interp(x, cx, cg)
                    df = float(mu_a * (1 - x) + mu_b * x - gx)
                res.append(df / self.sigma_zpf)
        for a in self.activities:
            ti = self._t_index[a.temperature_k]
            mu_a, mu_b = self.model.chemical_potentials(a.temperature_k, a.x, g_row=g[ti])
            mu = mu_b if a.species == self.model.components[1] else mu_a
            xr = 1.0 if a.species == self.model.components[1] else 0.0
            cx, cg = curve(self._t_index[a.ref_temperature_k], phases.index(a.ref_phase))
            g_ref = float(np.interp(xr, cx, cg))
            act = np.exp((mu - g_ref) / (R_GAS * a.temperature_k))
            res.append((act - a.activity) / self.sigma_activity)
        return np.asarray(res)

    def __call__(self, params: ArrayLike) -> float:
        """Log-likelihood (Normal residuals, constants dropped)."""
        self.n_evaluations += 1
        r = self.residuals(params)
        return float(-0.5 * np.sum(r * r))


class EspeiLikelihood:
    """ESPEI's likelihood (all its data types) for the database symbols ``parameters``.

    One evaluation on the full Cu-Mg data takes seconds (see the benchmark).
    """

    def __init__(self, database: Database, datasets: TinyDB, parameters: Sequence[str],
                 phase_models: Any = None) -> None:
        from espei.error_functions.context import setup_context

        self.parameters = list(parameters)
        self.ctx = setup_context(database, datasets, symbols_to_fit=self.parameters)
        self.ctx["prior_rvs"] = [_FlatPrior() for _ in self.parameters]

    def __call__(self, params: ArrayLike) -> float:
        from espei.optimizers.opt_mcmc import EmceeOptimizer

        # ESPEI orders its symbols sorted; ours may come in any order
        order = np.argsort(self.parameters, kind="stable")
        p = np.asarray(params, dtype=float)[order]
        return float(EmceeOptimizer.predict(p, **self.ctx))

    def __getstate__(self):
        return self.__dict__


class _FlatPrior:
    def logpdf(self, value):
        return 0.0


class LogPosterior:
    """Normal prior around ``center`` (std ``prior_std``, same units) + a log-likelihood.

    Picklable (sent to Dask workers); returns -inf for a non-finite likelihood.
    """

    def __init__(self, loglike: Callable[[np.ndarray], float], center: ArrayLike,
                 prior_std: ArrayLike) -> None:
        self.loglike = loglike
        self.center = np.asarray(center, dtype=float)
        self.prior_std = np.broadcast_to(np.asarray(prior_std, dtype=float), self.center.shape)

    def log_prior(self, params: ArrayLike) -> float:
        z = (np.asarray(params) - self.center) / self.prior_std
        return float(-0.5 * np.sum(z * z))

    def __call__(self, params: ArrayLike) -> float:
        lp = self.log_prior(params)
        try:
            ll = self.loglike(params)
        except Exception:  # a failed equilibrium is an impossible parameter set
            return -np.inf
        return lp + ll if np.isfinite(ll) else -np.inf


class EspeiPriorLogPosterior(LogPosterior):
    """A log-likelihood + priors as ESPEI builds them (``espei.priors``) around ``center``.

    ``spec`` is an ESPEI prior specification (``{"name": "normal", "loc_relative": 1.0,
    "scale_relative": 0.5}``, ``{"name": "zero"}``, triangular, uniform), one for all
    parameters or a list with one per parameter.
    """

    def __init__(self, loglike: Callable[[np.ndarray], float], center: ArrayLike,
                 spec: Any) -> None:
        from espei.priors import build_prior_specs

        super().__init__(loglike, center, 1.0)
        self.spec = spec
        try:
            specs = build_prior_specs(spec, self.center.tolist())
            self.priors = [s.get_prior(c) for s, c in zip(specs, self.center, strict=True)]
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"espei_prior {spec!r}: not an ESPEI prior specification "
                             f"({exc}); e.g. {{'name': 'normal', 'loc_relative': 1.0, "
                             "'scale_relative': 0.5}") from None

    def log_prior(self, params: ArrayLike) -> float:
        p = np.asarray(params, dtype=float)
        return float(sum(pr.logpdf(v) for pr, v in zip(self.priors, p, strict=True)))

    def __call__(self, params: ArrayLike) -> float:
        if not np.isfinite(self.log_prior(params)):  # outside a bounded prior: no likelihood
            return -np.inf
        return super().__call__(params)
