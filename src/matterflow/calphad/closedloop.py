"""Closed-loop check on synthetic truth: propose -> "measure" -> resample, vs random picks.

The truth is a published assessment (Cu-Mg ``cumg.tdb`` or Fe-C ``cfe_broshe.tdb``,
both shipped with pycalphad). The model is the
same database with free offsets on a few parameters (true value 0) and a
Normal prior; measurements are the truth's equilibrium at (T, x): the
phases present and, for a two-phase point, both tie-line ends with Gaussian
noise. Each iteration samples the posterior (short emcee run), propagates
draws, and adds ``per_iteration`` experiments chosen either by the entropy
of the predicted phase set (``proposed``) or uniformly at random (``random``)
from the same candidate grid.

Reported per iteration: the mean width of the 95 % intervals of the
invariant temperatures, the mean absolute error of the posterior-mean
invariant temperatures against the truth, and the fraction of the (T, x)
grid where the modal predicted phase set differs from the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from matterflow.calphad.datasets import ZPFPoint, cumg_truth_tdb
from matterflow.calphad.engine import BinaryModel, add_offset_parameters, load_database
from matterflow.calphad.likelihood import FastLikelihood, LogPosterior
from matterflow.calphad.mcmc import run_emcee
from matterflow.calphad.propagate import (
    diagram_of_draw,
    entropy_map,
    interval,
    phase_set_labels,
    propose,
)

__all__ = ["LoopSettings", "LoopHistory", "run_loop"]

OFFSETS = {"DL0": "G(LIQUID,CU,MG;0)", "DCUMG2": "G(CUMG2,CU:MG;0)",
           "DLAV": "G(CU2MG,CU:MG;0)"}


def _fe_c_tdb():
    from importlib.resources import files

    return files("pycalphad.tests.databases") / "cfe_broshe.tdb"


# truth database, components, phases, free offsets, temperature window (K)
SYSTEMS = {
    "Cu-Mg": {"tdb": cumg_truth_tdb, "components": None, "phases": None, "offsets": OFFSETS,
              "t_range": (650.0, 1150.0), "x_range": (0.02, 0.98)},
    "Fe-C": {"tdb": _fe_c_tdb, "components": ["FE", "C"],
             "phases": ["BCC_A2", "FCC_A1", "GRAPHITE", "LIQUID"],
             "offsets": {"DL0": "G(LIQUID,C,FE;0)", "DFCC": "G(FCC_A1,FE:C,VA;0)",
                         "DFCCC": "G(FCC_A1,FE:C;0)"},
             "t_range": (950.0, 1500.0), "x_range": (0.005, 0.3)},
}


@dataclass(frozen=True)
class LoopSettings:
    n_iterations: int = 5
    per_iteration: int = 2
    n_initial: int = 3
    prior_std: float = 3000.0  # J/mol
    noise_x: float = 0.005
    sigma_zpf: float = 250.0  # J/mol; sharper than ESPEI's 1000 for exact synthetic data
    n_walkers: int = 12
    n_steps: int = 100
    n_draws: int = 16
    n_grid: int = 100
    n_t: int = 26
    n_x: int = 41
    system: str = "Cu-Mg"

    @property
    def spec(self) -> dict:
        return SYSTEMS[self.system]

    @property
    def offsets(self) -> dict:
        return dict(self.spec["offsets"])

    @property
    def t_range(self) -> tuple:
        return self.spec["t_range"]


@dataclass
class LoopHistory:
    strategy: str
    seed: int
    n_experiments: list = field(default_factory=list)
    ci_width_k: list = field(default_factory=list)  # mean 95 % width of invariant T
    t_error_k: list = field(default_factory=list)  # mean |T(posterior mean) - T(truth)|
    phase_error: list = field(default_factory=list)  # fraction of grid with wrong phase set
    experiments: list = field(default_factory=list)


def _measure(truth: BinaryModel, t, x, rng, noise_x) -> ZPFPoint:
    """The truth's equilibrium at (T, x) as a ZPF observation with noisy compositions."""
    regs = truth.regions(t)
    width = {}
    for r in regs:
        if len(r.phases) == 1:
            width[r.phases[0]] = max(width.get(r.phases[0], 0.0), r.x_right - r.x_left)

    def observed(phase, v):
        # a (nearly) stoichiometric phase: composition not reported (noise would swamp its
        # tangent), as for line compounds in the ESPEI datasets
        if width.get(phase, 0.0) < 0.02:
            return float("nan")
        return float(np.clip(v + rng.normal(0, noise_x), 0, 1))

    for r in regs:
        if r.x_left - 1e-12 <= x <= r.x_right + 1e-12:
            if len(r.phases) == 1:
                return ZPFPoint(t, r.phases, (observed(r.phases[0], x),), "synthetic")
            xs = (observed(r.phases[0], r.x_left), observed(r.phases[1], r.x_right))
            return ZPFPoint(t, r.phases, xs, "synthetic")
    raise ValueError(f"x={x} outside the hull")


def run_loop(strategy: str, seed: int, settings: LoopSettings = LoopSettings(),
             progress: Callable[[str, int, int, LoopHistory], None] | None = None) -> LoopHistory:
    """One closed loop (``strategy`` 'proposed' or 'random') from ``seed``."""
    rng = np.random.default_rng(seed)
    s = settings
    spec = s.spec
    tdb = str(spec["tdb"]())
    truth = BinaryModel(tdb, components=spec["components"], phases=spec["phases"],
                        n_grid=s.n_grid)
    dbf = load_database(tdb)
    add_offset_parameters(dbf, s.offsets)
    names = list(s.offsets)
    model = BinaryModel(dbf, components=spec["components"], phases=spec["phases"],
                        parameters=names, n_grid=s.n_grid)
    temps = np.linspace(*s.t_range, s.n_t)
    xg = np.linspace(*spec["x_range"], s.n_x)
    labels_set = phase_set_labels(model.phases)
    true_inv = {i.label: i.temperature_k for i in
                truth.invariants(t_min=s.t_range[0], t_max=s.t_range[1])}
    labels = sorted(true_inv)
    true_codes = np.array([[labels_set.index(v) for v in truth.phase_set(t, xg)[0]]
                           for t in temps])
    # the unknown starting point of the study: a draw from the prior
    prior_center = rng.normal(0.0, s.prior_std, size=len(names))
    start, spread = prior_center, np.full(len(names), 0.5 * s.prior_std)
    data = [_measure(truth, float(rng.choice(temps)), float(rng.choice(xg)), rng, s.noise_x)
            for _ in range(s.n_initial)]
    hist = LoopHistory(strategy, seed)
    for it in range(s.n_iterations + 1):
        like = FastLikelihood(model, data, [], sigma_zpf=s.sigma_zpf)
        post = LogPosterior(like, prior_center, s.prior_std)
        res = run_emcee(post, start, spread, n_walkers=s.n_walkers,
                        n_steps=s.n_steps, seed=seed * 1000 + it)
        kept = res.chain[len(res.chain) // 2:].reshape(-1, len(names))
        draws = kept[rng.choice(len(kept), size=s.n_draws, replace=False)]
        # the next chain starts from the current posterior (mean, std)
        start, spread = kept.mean(axis=0), np.maximum(kept.std(axis=0), 50.0)
        inv_t, codes = [], []
        for d in draws:
            out = diagram_of_draw(model, d, labels, temps, xg,
                                  t_scan=(s.t_range[0], s.t_range[1]), dt=20.0, tol=0.1)
            inv_t.append(out["invariant_temperature_k"])
            codes.append(out["phase_set_code"])
        inv_t, codes = np.array(inv_t), np.array(codes)
        mean_t, lo, hi = interval(inv_t)
        width = np.where(np.isfinite(hi - lo), hi - lo, s.t_range[1] - s.t_range[0])
        err = np.abs(np.where(np.isfinite(mean_t), mean_t, np.inf) -
                     np.array([true_inv[k] for k in labels]))
        err = np.minimum(err, s.t_range[1] - s.t_range[0])
        _, mode, _ = entropy_map(codes, len(labels_set))
        hist.n_experiments.append(len(data))
        hist.ci_width_k.append(float(np.mean(width)))
        hist.t_error_k.append(float(np.mean(err)))
        hist.phase_error.append(float(np.mean(mode != true_codes)))
        if progress:
            progress(strategy, seed, it, hist)
        if it == s.n_iterations:
            break
        done = [(p.temperature_k, float(np.mean(p.x))) for p in data]
        if strategy == "proposed":
            picks = propose(codes, temps, xg, len(labels_set), top_k=s.per_iteration,
                            exclude=[(t, x) for t, x in done])
            new = [(p["temperature_k"], p["x"]) for p in picks]
            while len(new) < s.per_iteration:  # nothing uncertain left: fill at random
                new.append((float(rng.choice(temps)), float(rng.choice(xg))))
        elif strategy == "random":
            new = [(float(rng.choice(temps)), float(rng.choice(xg)))
                   for _ in range(s.per_iteration)]
        else:
            raise ValueError(f"strategy must be 'proposed' or 'random'; got {strategy!r}")
        hist.experiments.extend(new)
        data += [_measure(truth, t, x, rng, s.noise_x) for t, x in new]
    return hist
