"""Tasks of the time-dependent part of dft1d: reference propagator and parametric PINN.

- ``dft1d.tdse_reference`` -- Crank–Nicolson propagation of the ground state
  of a 1D well driven by ``E₀ sin(ωt)`` (atomic units), with the exact
  centre of the driven harmonic oscillator as a check.
- ``dft1d.pinn_train`` -- trains one PINN ``(x, t, E₀) → ψ`` for a range of
  ``E₀``, then compares it with the reference at given amplitudes: density
  error, timings and the break-even number of queries.
- ``dft1d.pinn_predict`` -- a trained model (the bytes stored by
  ``pinn_train``) at a new amplitude, against the reference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from matterflow.core.blob import bytes_field, from_bytes_array, to_bytes_array
from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity, task

__all__ = ["tdse_reference", "pinn_train", "pinn_predict", "TASKS"]

_AU_T = {"units": "ħ/Eh (a.u. of time)"}
_AU_X = {"units": "bohr"}
_AU_E = {"units": "Eh/(e bohr) (a.u. of field)"}
_AU_W = {"units": "Eh/ħ (a.u.)"}


class _ReferenceGrid(Params):
    """Space-time grid of the reference propagator (and of the PINN's comparison)."""

    n_x: int = Field(256, ge=16, le=8192, description="grid points in x (reference and PINN)")
    n_steps: int = Field(400, ge=10, le=1_000_000, description="reference time steps")
    n_saved: int = Field(81, ge=2, le=10_001,
                         description="saved times (n_steps divisible by n_saved-1)")

    @model_validator(mode="after")
    def _saved_divides_steps(self):
        if self.n_steps % (self.n_saved - 1):
            raise ValueError(f"n_steps ({self.n_steps}) must be a multiple of n_saved - 1 "
                             f"({self.n_saved - 1})")
        return self


class ProblemParams(_ReferenceGrid):
    """The driven one-electron problem (shared by all tasks here)."""

    potential: Literal["harmonic", "soft_coulomb"] = Field(
        "harmonic", description="binding potential: ½ω₀²x² or -Z/sqrt(x²+a²)")
    omega0: float = Field(1.0, gt=0, description="harmonic frequency ω₀", json_schema_extra=_AU_W)
    charge: float = Field(1.0, gt=0, description="soft-Coulomb charge Z",
                          json_schema_extra={"units": "e"})
    softening: float = Field(1.0, gt=0, description="soft-Coulomb softening a",
                             json_schema_extra=_AU_X)
    omega: float = Field(1.0, ge=0, description="field frequency ω", json_schema_extra=_AU_W)
    t_final: float = Field(2.0, gt=0, le=50, description="end of the time window",
                           json_schema_extra=_AU_T)
    x_max: float = Field(5.0, gt=0, le=100, description="half width of the box (ψ=0 at ±x_max)",
                         json_schema_extra=_AU_X)
    n_electrons: Literal[1, 2] = Field(
        1, description="1 electron, or 2 (singlet) in TDKS with exact exchange")
    interaction_softening: float = Field(1.0, gt=0, description="softening of e-e interaction",
                                         json_schema_extra=_AU_X)

    def setup(self):
        from matterflow.dft1d.tdse import setup_of

        return setup_of(self)

    def problem_dict(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self.setup())


# --------------------------------------------------------------------------- reference

class ReferenceParams(ProblemParams):
    e0: float = Field(0.5, ge=0, le=100, description="field amplitude E₀", json_schema_extra=_AU_E)


@dataclass(frozen=True)
class TDSEReference:
    x_bohr: np.ndarray = quantity("bohr", "(n_x,) interior grid points")
    t_au: np.ndarray = quantity("ħ/Eh", "(n_saved,) saved times")
    density: np.ndarray = quantity("1/bohr", "(n_saved, n_x) n_electrons |ψ|²")
    dipole_bohr: np.ndarray = quantity("bohr", "(n_saved,) <x> per electron")
    exact_dipole_bohr: np.ndarray = quantity(
        "bohr", "(n_saved,) exact <x> in the driven harmonic well, also for two electrons "
        "(harmonic potential theorem); NaN for soft Coulomb")
    norm: np.ndarray = quantity("dimensionless", "(n_saved,) ∫|ψ|² dx")
    field_au: np.ndarray = quantity("Eh/(e bohr)", "(n_saved,) E₀ sin(ωt)")
    ground_energy_hartree: float = quantity("hartree", "energy of the initial ground state")
    wall_time_s: float = quantity("s", "time of the propagation")


def _reference_figures(outputs: dict, params: ReferenceParams) -> dict:
    import matplotlib.pyplot as plt

    x, t = outputs["x_bohr"], outputs["t_au"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    im = ax1.pcolormesh(x, t, outputs["density"], shading="auto", cmap="viridis")
    fig.colorbar(im, ax=ax1, label="ρ (1/bohr)")
    ax1.set_xlabel("x (bohr)")
    ax1.set_ylabel("t (a.u.)")
    ax1.set_title(f"density, E₀ = {params.e0:g}")
    ax2.plot(t, outputs["dipole_bohr"], label="Crank–Nicolson <x>")
    exact = np.asarray(outputs["exact_dipole_bohr"])
    if np.all(np.isfinite(exact)):
        ax2.plot(t, exact, "k--", label="exact (driven oscillator)")
    ax2.set_xlabel("t (a.u.)")
    ax2.set_ylabel("<x> (bohr)")
    ax2.legend()
    fig.tight_layout()
    return {"Reference density and dipole": fig}


@task("dft1d.tdse_reference", params=ReferenceParams, figures=_reference_figures, version="1")
def tdse_reference(*, params: ReferenceParams) -> TDSEReference:
    """Crank–Nicolson propagation of a 1D ground state driven by E₀ sin(ωt) (atomic units)."""
    from matterflow.dft1d.tdse import harmonic_centre, propagate

    setup = params.setup()
    start = time.perf_counter()
    sol = propagate(setup, params.e0, n_x=params.n_x, n_steps=params.n_steps,
                    n_saved=params.n_saved)
    wall = time.perf_counter() - start
    exact = (harmonic_centre(setup, params.e0, sol.t) if params.potential == "harmonic"
             else np.full(len(sol.t), np.nan))
    return TDSEReference(x_bohr=sol.x, t_au=sol.t, density=sol.density, dipole_bohr=sol.dipole,
                         exact_dipole_bohr=exact, norm=sol.norm,
                         field_au=setup.field(sol.t, params.e0),
                         ground_energy_hartree=sol.ground_energy, wall_time_s=wall)


# --------------------------------------------------------------------------- PINN

class PINNTrainParams(ProblemParams):
    e0_min: float = Field(0.0, ge=0, description="smallest trained field amplitude",
                          json_schema_extra=_AU_E)
    e0_max: float = Field(1.0, gt=0, le=100, description="largest trained field amplitude",
                          json_schema_extra=_AU_E)
    eval_e0: list[float] = Field([0.3, 1.0], min_length=1, max_length=50,
                                 description="amplitudes at which PINN and reference are compared",
                                 json_schema_extra=_AU_E)
    width: int = Field(64, ge=4, le=1024, description="hidden units per layer")
    depth: int = Field(4, ge=1, le=16, description="hidden layers (tanh)")
    n_fourier: int = Field(4, ge=0, le=64, description="sin/cos(kπx/L) input features")
    adam_steps: int = Field(1000, ge=0, le=1_000_000, description="Adam iterations")
    lbfgs_steps: int = Field(60, ge=0, le=100_000, description="L-BFGS iterations")
    learning_rate: float = Field(3e-3, gt=0, le=1, description="initial Adam step size")
    batch_size: int = Field(512, ge=16, le=1_000_000, description="collocation points per step")
    n_time_bins: int = Field(16, ge=1, le=1024, description="time strata of the causal weights")
    causal_eps: float = Field(100.0, ge=0, description="causal weighting strength (0: off)")
    n_threads: int = Field(1, ge=0, le=256, description="torch threads (0: torch default)")
    seed: int = Field(0, ge=0, description="random seed (weights, collocation points)")

    @model_validator(mode="after")
    def _range_ok(self):
        if self.e0_min >= self.e0_max:
            raise ValueError(f"e0_min ({self.e0_min}) must be < e0_max ({self.e0_max})")
        bad = [e for e in self.eval_e0 if not self.e0_min <= e <= self.e0_max]
        if bad:
            raise ValueError(f"eval_e0 values {bad} lie outside [e0_min, e0_max] = "
                             f"[{self.e0_min}, {self.e0_max}]")
        return self


@dataclass(frozen=True)
class PINNComparison:
    e0: np.ndarray = quantity("Eh/(e bohr)", "(n_e,) compared field amplitudes")
    x_bohr: np.ndarray = quantity("bohr", "(n_x,) grid")
    t_au: np.ndarray = quantity("ħ/Eh", "(n_saved,) times")
    density_pinn: np.ndarray = quantity("1/bohr", "(n_e, n_saved, n_x) PINN |ψ|²")
    density_reference: np.ndarray = quantity("1/bohr", "(n_e, n_saved, n_x) Crank–Nicolson |ψ|²")
    dipole_pinn: np.ndarray = quantity("bohr", "(n_e, n_saved) PINN <x>")
    dipole_reference: np.ndarray = quantity("bohr", "(n_e, n_saved) reference <x>")
    density_error: np.ndarray = quantity("dimensionless", "(n_e,) relative L2 error over x and t")
    static_error: np.ndarray = quantity(
        "dimensionless", "(n_e,) same error for the field-free guess ρ(x,t)=ρ₀(x) (a baseline)")
    inference_time_s: np.ndarray = quantity("s", "(n_e,) PINN evaluation on the grid")
    reference_time_s: np.ndarray = quantity("s", "(n_e,) Crank–Nicolson run")


@dataclass(frozen=True)
class PINNTraining(PINNComparison):
    model: np.ndarray = bytes_field("trained model (TDSEPINN.to_bytes)")
    loss_history: np.ndarray = quantity("Eh²/bohr", "(n_iter,) mean squared TDSE residual")
    train_time_s: float = quantity("s", "wall time of the training")
    break_even_queries: float = quantity(
        "dimensionless", "new E₀ queries after which the PINN is cheaper (inf: never)")


def _comparisons(model, e0_values, params) -> dict:
    from matterflow.dft1d.pinn import compare_with_reference

    rows = [compare_with_reference(model, e, n_x=params.n_x, n_steps=params.n_steps,
                                   n_saved=params.n_saved) for e in e0_values]
    out = {"e0": np.asarray(e0_values, dtype=float), "x_bohr": rows[0]["x"], "t_au": rows[0]["t"]}
    for key in ("density_pinn", "density_reference", "dipole_pinn", "dipole_reference",
                "density_error", "static_error", "inference_time_s", "reference_time_s"):
        out[key] = np.asarray([r[key] for r in rows])
    return out


def _comparison_figures(outputs: dict, params) -> dict:
    import matplotlib.pyplot as plt

    figs = {}
    x, t = outputs["x_bohr"], outputs["t_au"]
    e0s = np.atleast_1d(outputs["e0"])
    for i, e0 in enumerate(e0s):
        ref, pinn = outputs["density_reference"][i], outputs["density_pinn"][i]
        fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
        vmax = float(max(ref.max(), pinn.max()))
        for ax, data, title in ((axes[0], ref, "Crank–Nicolson"), (axes[1], pinn, "PINN")):
            im = ax.pcolormesh(x, t, data, shading="auto", vmin=0, vmax=vmax, cmap="viridis")
            ax.set_title(f"{title} ρ(x,t)")
            ax.set_xlabel("x (bohr)")
        axes[0].set_ylabel("t (a.u.)")
        fig.colorbar(im, ax=axes[1])
        diff = pinn - ref
        lim = float(np.abs(diff).max()) or 1.0
        im = axes[2].pcolormesh(x, t, diff, shading="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[2].set_title(f"PINN − reference (rel. L2 {outputs['density_error'][i]:.2%})")
        axes[2].set_xlabel("x (bohr)")
        fig.colorbar(im, ax=axes[2])
        for k, ls in ((0, "-"), (len(t) // 2, "--"), (len(t) - 1, ":")):
            axes[3].plot(x, ref[k], "k", ls=ls, lw=1, label=f"reference t={t[k]:.2g}")
            axes[3].plot(x, pinn[k], "C1", ls=ls, lw=1.5, label=f"PINN t={t[k]:.2g}")
        axes[3].set_xlabel("x (bohr)")
        axes[3].set_ylabel("ρ (1/bohr)")
        axes[3].legend(fontsize=6)
        fig.suptitle(f"E₀ = {e0:g} a.u.")
        fig.tight_layout()
        figs[f"PINN vs reference density, E0 = {e0:g}"] = fig
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for i, e0 in enumerate(e0s):
        ax.plot(t, outputs["dipole_reference"][i], "k-", lw=1)
        ax.plot(t, outputs["dipole_pinn"][i], "--", lw=1.5, label=f"PINN E₀={e0:g}")
    ax.set_xlabel("t (a.u.)")
    ax.set_ylabel("<x> (bohr)")
    ax.set_title("dipole: PINN (dashed) vs reference (black)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    figs["Dipole PINN vs reference"] = fig
    if "loss_history" in outputs:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.semilogy(np.asarray(outputs["loss_history"]))
        ax.set_xlabel("iteration (Adam, then L-BFGS every 20)")
        ax.set_ylabel("mean squared residual")
        ax.set_title(f"training {float(outputs['train_time_s']):.1f} s")
        fig.tight_layout()
        figs["PINN training loss"] = fig
    return figs


@task("dft1d.pinn_train", params=PINNTrainParams, figures=_comparison_figures, version="1")
def pinn_train(*, params: PINNTrainParams) -> PINNTraining:
    """Train one PINN (x, t, E₀) → ψ for a range of E₀; compare with Crank–Nicolson."""
    from matterflow.dft1d.pinn import TDSEPINN, break_even_queries

    model = TDSEPINN(**params.problem_dict(), e0_min=params.e0_min, e0_max=params.e0_max,
                     width=params.width, depth=params.depth, n_fourier=params.n_fourier,
                     adam_steps=params.adam_steps, lbfgs_steps=params.lbfgs_steps,
                     learning_rate=params.learning_rate, batch_size=params.batch_size,
                     n_time_bins=params.n_time_bins, causal_eps=params.causal_eps,
                     seed=params.seed, n_threads=params.n_threads).fit()
    comp = _comparisons(model, params.eval_e0, params)
    n_star = break_even_queries(model.fit_time_s_, float(np.mean(comp["inference_time_s"])),
                                float(np.mean(comp["reference_time_s"])))
    return PINNTraining(**comp, model=to_bytes_array(model.to_bytes()),
                        loss_history=model.loss_history_, train_time_s=model.fit_time_s_,
                        break_even_queries=n_star)


class PINNPredictParams(_ReferenceGrid):
    e0: list[float] = Field([0.5], min_length=1, max_length=100,
                            description="new field amplitudes (inside the trained range)",
                            json_schema_extra=_AU_E)


@task("dft1d.pinn_predict", params=PINNPredictParams, figures=_comparison_figures, version="1")
def pinn_predict(model: np.ndarray, *, params: PINNPredictParams) -> PINNComparison:
    """A trained PINN (bytes from dft1d.pinn_train) at new E₀, against Crank–Nicolson."""
    from matterflow.dft1d.pinn import TDSEPINN

    if isinstance(model, TDSEPINN):
        pinn = model
    else:
        pinn = TDSEPINN.from_bytes(from_bytes_array(model, field="model", accepted="a TDSEPINN"),
                                   where="model")
    bad = [e for e in params.e0 if not pinn.e0_min <= e <= pinn.e0_max]
    if bad:
        raise InputError(f"e0: {bad} outside the trained range [{pinn.e0_min}, {pinn.e0_max}]")
    return PINNComparison(**_comparisons(pinn, params.e0, params))


TASKS = [tdse_reference, pinn_train, pinn_predict]
