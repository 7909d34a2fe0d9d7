"""dft1d tasks: potentials, exact two-electron densities with their KS inversion, FNO training.

A dataset workflow (what ``matterflow dft1d generate`` runs)::

    steps:
      - {id: potentials, task: dft1d.potentials, params: {n_samples: 2000, seed: 0}}
      - id: exact
        task: dft1d.exact_invert           # mapped over potentials, in batches on Dask
        inputs: {v_ext: potentials.v_ext, x: potentials.x}
      - id: fno
        task: dft1d.train_fno
        inputs: {x: potentials.x, v_ext: potentials.v_ext, split: potentials.split,
                 family: potentials.family, density: exact.density, v_hxc: exact.v_hxc}

Units: Hartree atomic units (bohr, Ha, electrons/bohr).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field, field_validator

from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity, task
from matterflow.dft1d.potentials import DEFAULT_FAMILIES, FAMILIES, check_families

__all__ = ["TASKS", "potentials", "exact_invert", "invert", "train_fno"]

_FAMILY_DOC = f"potential families, any of: {', '.join(FAMILIES)}"


# --------------------------------------------------------------------------- potentials

def _known_family(v: str | None) -> str | None:
    if v is not None and v not in FAMILIES:
        raise ValueError(f"unknown potential family {v!r}; known: {', '.join(FAMILIES)}")
    return v


# a family name, or None; checked against the known families
FamilyName = Annotated[str | None, AfterValidator(_known_family)]


class PotentialsParams(Params):
    families: list[str] = Field(list(DEFAULT_FAMILIES), min_length=1, description=_FAMILY_DOC)
    n_samples: int = Field(200, ge=1, le=1_000_000, description="number of potentials")
    n_points: int = Field(64, ge=16, le=512, description="grid points")
    length: float = Field(20.0, gt=2, le=200, description="box length (grid from -L/2 to L/2)",
                          json_schema_extra={"units": "bohr"})
    val_fraction: float = Field(0.1, ge=0, lt=0.5, description="fraction for validation")
    test_fraction: float = Field(0.1, ge=0, lt=0.5, description="fraction for testing")
    holdout_family: FamilyName = Field(None, description="family kept out of train/val: all its "
                                       "samples get split 'ood' (out of distribution)")
    seed: int = Field(0, ge=0, description="random seed of the potentials and the split")

    @field_validator("families")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        try:
            return check_families(v)
        except InputError as exc:
            raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class Potentials:
    x: np.ndarray = quantity("bohr", "(n_points,) uniform grid")
    v_ext: np.ndarray = quantity("Ha", "(n_samples, n_points) external potentials")
    family: list = quantity("", "(n_samples,) family of each potential")
    split: list = quantity("", "(n_samples,) train, val, test or ood")


def _potential_figures(outputs: dict, params: PotentialsParams) -> dict:
    import matplotlib.pyplot as plt

    x, v, fam = outputs["x"], outputs["v_ext"], list(outputs["family"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in dict.fromkeys(fam):
        idx = [i for i, f in enumerate(fam) if f == name][:3]
        lines = ax.plot(x, v[idx].T, lw=1)
        for ln in lines[1:]:
            ln.set_color(lines[0].get_color())
        lines[0].set_label(name)
    ax.set_xlabel("x (bohr)")
    ax.set_ylabel("v_ext (Ha)")
    ax.set_ylim(-4, 4)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return {"Sample external potentials (3 per family)": fig}


@task("dft1d.potentials", params=PotentialsParams, figures=_potential_figures)
def potentials(*, params: PotentialsParams) -> Potentials:
    """Random external potentials from named families, with train/val/test(/ood) splits."""
    from matterflow.dft1d.grid import make_grid
    from matterflow.dft1d.potentials import sample_potentials

    grid = make_grid(params.n_points, params.length)
    v, fam = sample_potentials(params.families, params.n_samples, grid.x, params.seed)
    rng = np.random.default_rng(params.seed + 1)
    u = rng.random(params.n_samples)
    split = np.where(u < params.test_fraction, "test",
                     np.where(u < params.test_fraction + params.val_fraction, "val", "train"))
    split = [("ood" if f == params.holdout_family else str(s)) for s, f in zip(split, fam, strict=True)]
    return Potentials(x=grid.x, v_ext=v, family=fam, split=split)


# --------------------------------------------------------------------------- exact + inversion

class _InversionSettings(Params):
    """Grid and Wu–Yang settings shared by ``dft1d.exact_invert`` and ``dft1d.invert``."""

    stencil: Literal[3, 5, 7, 9] = Field(5, description="finite-difference stencil (points)")
    softening: float = Field(1.0, gt=0, description="a in 1/sqrt((x-x')²+a²) (interaction, Hartree)",
                             json_schema_extra={"units": "bohr"})
    regularisation: float = Field(1e-9, ge=0, le=1, description="λ of the smoothness penalty",
                                  json_schema_extra={"units": "Ha bohr"})
    tol: float = Field(1e-7, gt=0, description="max |n_KS - n_target| required",
                       json_schema_extra={"units": "1/bohr"})
    max_iter: int = Field(100, ge=1, description="Newton iterations of the inversion")


class ExactInvertParams(_InversionSettings):
    n_electrons: Literal[1, 2] = Field(2, description="electrons solved exactly")
    spin: Literal["singlet", "triplet"] = Field("singlet", description="spin state of 2 electrons")


@dataclass(frozen=True)
class ExactInverted:
    density: np.ndarray = quantity("1/bohr", "(n_points,) exact ground-state density")
    energy: float = quantity("Ha", "exact ground-state energy")
    v_ks: np.ndarray = quantity("Ha", "(n_points,) KS potential (gauge: see dft1d.inversion)")
    v_hxc: np.ndarray = quantity("Ha", "(n_points,) v_ks - v_ext")
    ks_homo: float = quantity("Ha", "highest occupied KS eigenvalue")
    max_density_error: float = quantity("1/bohr", "max |n_KS - n_exact| reached")
    n_iterations: int = quantity("dimensionless", "Newton iterations of the inversion")
    seconds_exact: float = quantity("s", "wall time of the exact solve")
    seconds_inversion: float = quantity("s", "wall time of the inversion")


def _exact_figures(outputs: dict, params: ExactInvertParams) -> dict:
    import matplotlib.pyplot as plt

    n, vh = np.atleast_2d(outputs["density"]), np.atleast_2d(outputs["v_hxc"])
    err = np.atleast_1d(outputs["max_density_error"])
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(11, 3.3))
    for i in range(min(5, len(n))):
        a1.plot(n[i], lw=1)
        a2.plot(vh[i], lw=1)
    a1.set_title("exact densities (first 5)")
    a1.set_xlabel("grid index")
    a2.set_title("v_Hxc from inversion (Ha)")
    a2.set_xlabel("grid index")
    a3.hist(np.log10(np.maximum(err, 1e-16)), bins=30)
    a3.set_xlabel("log10 max |n_KS - n_exact|")
    a3.set_title("inversion residual")
    fig.tight_layout()
    return {"Exact densities and inverted Hxc potentials": fig}


@task("dft1d.exact_invert", params=ExactInvertParams, map_over="v_ext", figures=_exact_figures,
      version="1")
def exact_invert(v_ext: np.ndarray, x: np.ndarray, *, params: ExactInvertParams) -> ExactInverted:
    """Exact ground-state density of one potential (Ha) and the KS potential that reproduces it."""
    import time

    from matterflow.dft1d.exact import solve_one_electron, solve_two_electrons
    from matterflow.dft1d.inversion import invert_density

    t0 = time.perf_counter()
    if params.n_electrons == 2:
        st = solve_two_electrons(v_ext, x, spin=params.spin, stencil=params.stencil,
                                 softening=params.softening)
        density, energy = st.density, st.energy
    else:
        st1 = solve_one_electron(v_ext, x, stencil=params.stencil)
        density, energy = st1.density, float(st1.energies[0])
    t1 = time.perf_counter()
    spin = "polarised" if params.n_electrons == 2 and params.spin == "triplet" else "unpolarised"
    inv = invert_density(density, v_ext, x, n_electrons=params.n_electrons, spin=spin,
                         stencil=params.stencil, softening=params.softening,
                         regularisation=params.regularisation, tol=params.tol,
                         max_iter=params.max_iter)
    return ExactInverted(density=density, energy=energy, v_ks=inv.v_ks, v_hxc=inv.v_hxc,
                         ks_homo=float(inv.eigenvalues[-1]), max_density_error=inv.max_density_error,
                         n_iterations=inv.n_iterations, seconds_exact=t1 - t0,
                         seconds_inversion=inv.seconds)


class InvertParams(_InversionSettings):
    n_electrons: int = Field(2, ge=1, le=100, description="electrons in the density")
    spin: Literal["unpolarised", "polarised"] = Field("unpolarised",
                                                      description="KS occupations: 2 or 1 per orbital")


@dataclass(frozen=True)
class Inverted:
    v_ks: np.ndarray = quantity("Ha", "(n_points,) KS potential")
    v_hxc: np.ndarray = quantity("Ha", "(n_points,) v_ks - v_ext")
    density: np.ndarray = quantity("1/bohr", "(n_points,) KS density of v_ks")
    eigenvalues: np.ndarray = quantity("Ha", "(n_occ,) occupied KS eigenvalues")
    max_density_error: float = quantity("1/bohr", "max |n_KS - n_target|")
    n_iterations: int = quantity("dimensionless", "Newton iterations")
    seconds: float = quantity("s", "wall time")


def _invert_figures(outputs: dict, params: InvertParams) -> dict:
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.3))
    a1.plot(outputs["density"], label="KS density")
    a1.set_title(f"max error {float(outputs['max_density_error']):.2g} /bohr")
    a2.plot(outputs["v_ks"], label="v_KS")
    a2.plot(outputs["v_hxc"], label="v_Hxc")
    a2.legend()
    for a in (a1, a2):
        a.set_xlabel("grid index")
    fig.tight_layout()
    return {"Inverted Kohn-Sham potential": fig}


@task("dft1d.invert", params=InvertParams, figures=_invert_figures)
def invert(density: np.ndarray, v_ext: np.ndarray, x: np.ndarray, *, params: InvertParams
           ) -> Inverted:
    """Kohn–Sham potential whose density equals ``density`` (regularised Wu–Yang, Newton)."""
    from matterflow.dft1d.inversion import invert_density

    r = invert_density(density, v_ext, x, n_electrons=params.n_electrons, spin=params.spin,
                       stencil=params.stencil, softening=params.softening,
                       regularisation=params.regularisation, tol=params.tol,
                       max_iter=params.max_iter)
    return Inverted(v_ks=r.v_ks, v_hxc=r.v_hxc, density=r.density, eigenvalues=r.eigenvalues,
                    max_density_error=r.max_density_error, n_iterations=r.n_iterations,
                    seconds=r.seconds)



# --------------------------------------------------------------------------- FNO

class TrainFNOParams(Params):
    target: Literal["v_hxc", "v_ks"] = Field("v_hxc", description="potential learned from the density")
    holdout_family: FamilyName = Field(None, description="family moved to the 'ood' split "
                                       "(trained without it, tested on it)")
    n_modes: int = Field(16, ge=1, le=256, description="Fourier modes per layer")
    hidden_channels: int = Field(32, ge=2, le=512, description="width of the operator layers")
    n_layers: int = Field(4, ge=1, le=16, description="Fourier layers")
    epochs: int = Field(100, ge=1, le=10_000, description="training epochs")
    batch_size: int = Field(64, ge=1, le=4096, description="samples per step")
    learning_rate: float = Field(3e-3, gt=0, le=1, description="peak Adam learning rate")
    density_weight: float = Field(0.0, ge=0, le=1e4, description="λ of the physics loss "
                                  "rel. L2(v) + λ·∫|n[v_pred] - n| dx / N, n[v_pred] the KS "
                                  "density of the predicted potential (dimensionless); 0: off")
    physics_loss: Literal["density_l1", "wu_yang"] = Field(
        "density_l1", description="density term: relative L1 of the density of the predicted "
        "potential, or sqrt of the Wu-Yang functional gap (Ha^1/2)")
    exact_hx: bool = Field(False, description="learn v_Hxc - (1 - 1/N) v_H[n] and add that exact "
                           "term back (target v_hxc only)")
    density_warmup: float = Field(0.3, ge=0, lt=1, description="fraction of the epochs on the "
                                  "potential loss alone before the density term starts")
    spin: Literal["singlet", "triplet"] = Field("singlet", description="spin state of the "
                                                "dataset's 2 electrons (the exact step's spin): "
                                                "the KS occupations of the density check")
    symmetrise: bool = Field(False, description="build the x -> -x equivariance in: predict "
                             "½(f(n) + R f(R n)), R the grid reversal")
    residual_weight: float = Field(0.0, ge=0, le=1e3, description="γ: weight each sample's loss "
                                   "by 1 + γ r/mean(r), r its density residual (needs "
                                   "density_weight > 0; dimensionless); 0: off")
    gap_floor: float = Field(0.0, ge=0, le=10, description="density_l1 only: level spacings "
                             "below this floor are clipped in the gradient of the exact KS "
                             "density (bounds the 1/gap response); 0: the exact gradient",
                             json_schema_extra={"units": "Ha"})
    n_timing: int = Field(20, ge=1, le=10_000, description="test densities inverted numerically "
                          "to time the inversion against the FNO")
    n_examples: int = Field(4, ge=1, le=64, description="test (and ood) samples kept for figures")
    seed: int = Field(0, ge=0, description="torch seed of initialisation and batches")


@dataclass(frozen=True)
class FNOResult:
    x: np.ndarray = quantity("bohr", "(n_points,) grid")
    loss_history: np.ndarray = quantity("dimensionless", "(epochs,) training relative L2")
    val_history: np.ndarray = quantity("dimensionless", "(epochs,) validation relative L2")
    test_rel_l2: np.ndarray = quantity("dimensionless", "(n_test,) ||v_pred - v||/||v||")
    test_density_rel_l1: np.ndarray = quantity("dimensionless",
                                               "(n_test,) ∫|n[v_pred] - n| / ∫n")
    ood_rel_l2: np.ndarray = quantity("dimensionless", "(n_ood,) potential error, held-out family")
    ood_density_rel_l1: np.ndarray = quantity("dimensionless", "(n_ood,) density error, held-out")
    ood_family: str = quantity("", "held-out family (empty if none)")
    test_rel_l2_mean: float = quantity("dimensionless", "mean over the test split")
    test_density_rel_l1_mean: float = quantity("dimensionless", "mean over the test split")
    ood_rel_l2_mean: float = quantity("dimensionless", "mean over the ood split (nan if none)")
    ood_density_rel_l1_mean: float = quantity("dimensionless", "mean over ood (nan if none)")
    example_density: np.ndarray = quantity("1/bohr", "(n_examples, n_points) test densities")
    example_true: np.ndarray = quantity("Ha", "(n_examples, n_points) exact-inversion potential")
    example_pred: np.ndarray = quantity("Ha", "(n_examples, n_points) FNO potential")
    example_pred_density: np.ndarray = quantity("1/bohr", "(n_examples, n_points) KS density "
                                                "of the FNO potential")
    ood_example_density: np.ndarray = quantity("1/bohr", "(k, n_points) held-out densities")
    ood_example_true: np.ndarray = quantity("Ha", "(k, n_points) held-out exact potentials")
    ood_example_pred: np.ndarray = quantity("Ha", "(k, n_points) held-out FNO potentials")
    fit_seconds: float = quantity("s", "training wall time")
    fno_seconds_per_sample: float = quantity("s", "batched FNO inference per sample")
    inversion_seconds_per_sample: float = quantity("s", "numerical inversion per sample")
    wu_yang_seconds_per_sample: float = quantity("s", "general Wu-Yang path (reference start) "
                                                 "per sample")
    speedup: float = quantity("dimensionless", "inversion time / FNO time, same run")
    speedup_vs_wu_yang: float = quantity("dimensionless", "Wu-Yang (reference start) time / "
                                         "FNO time, same run")
    n_parameters: int = quantity("dimensionless", "trainable parameters")


def _fno_figures(outputs: dict, params: TrainFNOParams) -> dict:
    import matplotlib.pyplot as plt

    x = outputs["x"]
    figs = {}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    a1.semilogy(outputs["loss_history"], label="train")
    if len(outputs["val_history"]):
        a1.semilogy(outputs["val_history"], label="validation")
    a1.set_xlabel("epoch")
    a1.set_ylabel("relative L2 of the potential")
    a1.legend()
    a2.hist(100 * np.asarray(outputs["test_rel_l2"]), bins=30, alpha=0.7, label="test")
    if len(outputs["ood_rel_l2"]):
        a2.hist(100 * np.asarray(outputs["ood_rel_l2"]), bins=30, alpha=0.7,
                label=f"held out: {outputs['ood_family']}")
    a2.set_xlabel("relative L2 error of the potential (%)")
    a2.legend()
    fig.tight_layout()
    figs["Training and error distribution"] = fig
    k = len(outputs["example_true"])
    fig, axes = plt.subplots(2, k, figsize=(3 * k, 5.5), squeeze=False)
    for i in range(k):
        axes[0, i].plot(x, outputs["example_true"][i], "k-", label="inversion")
        axes[0, i].plot(x, outputs["example_pred"][i], "r--", label="FNO")
        axes[1, i].plot(x, outputs["example_density"][i], "k-", label="exact")
        axes[1, i].plot(x, outputs["example_pred_density"][i], "r--", label="KS of FNO v")
        axes[1, i].set_xlabel("x (bohr)")
    axes[0, 0].set_ylabel(f"{params.target} (Ha)")
    axes[1, 0].set_ylabel("density (1/bohr)")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    fig.suptitle(f"test samples: mean rel. L2 {100 * float(outputs['test_rel_l2_mean']):.2f} %, "
                 f"density rel. L1 {100 * float(outputs['test_density_rel_l1_mean']):.2f} %")
    fig.tight_layout()
    figs["Predicted vs exact potentials and densities (test)"] = fig
    if len(outputs["ood_example_true"]):
        k = len(outputs["ood_example_true"])
        fig, axes = plt.subplots(1, k, figsize=(3 * k, 3), squeeze=False)
        for i in range(k):
            axes[0, i].plot(x, outputs["ood_example_true"][i], "k-", label="inversion")
            axes[0, i].plot(x, outputs["ood_example_pred"][i], "r--", label="FNO")
            axes[0, i].set_xlabel("x (bohr)")
        axes[0, 0].legend(fontsize=7)
        fig.suptitle(f"held-out family {outputs['ood_family']}: mean rel. L2 "
                     f"{100 * float(outputs['ood_rel_l2_mean']):.2f} %")
        fig.tight_layout()
        figs["Out of distribution (held-out family)"] = fig
    return figs


@task("dft1d.train_fno", params=TrainFNOParams, figures=_fno_figures, version="4")
def train_fno(x: np.ndarray, v_ext: np.ndarray, density: np.ndarray, v_hxc: np.ndarray,
              split: list, family: list, *, params: TrainFNOParams) -> FNOResult:
    """Train a Fourier neural operator density -> potential; test in and out of distribution."""
    from matterflow.dft1d.fno import holdout_split, train_and_evaluate

    v_ext = np.asarray(v_ext, dtype=float)
    target = np.asarray(v_hxc, dtype=float) + (v_ext if params.target == "v_ks" else 0.0)
    split = list(split)
    if params.holdout_family is not None:
        split = holdout_split(split, list(family), params.holdout_family)
    model, rep = train_and_evaluate(
        np.asarray(x, float), v_ext, np.asarray(density, float), target, split, list(family),
        target=params.target, n_timing=params.n_timing, n_modes=params.n_modes,
        hidden_channels=params.hidden_channels, n_layers=params.n_layers, epochs=params.epochs,
        batch_size=params.batch_size, learning_rate=params.learning_rate, seed=params.seed,
        density_weight=params.density_weight, density_warmup=params.density_warmup,
        physics_loss=params.physics_loss, spin=params.spin,
        exact_hx=params.exact_hx and params.target == "v_hxc", symmetrise=params.symmetrise,
        residual_weight=params.residual_weight, gap_floor=params.gap_floor)
    k = min(params.n_examples, len(rep.test_index))
    te = rep.test_index[:k]
    ko = min(params.n_examples, len(rep.ood_index))
    od = rep.ood_index[:ko]
    nan = float("nan")
    empty = np.zeros((0, len(x)))
    return FNOResult(
        x=np.asarray(x, float), loss_history=np.asarray(model.loss_history_),
        val_history=np.asarray(model.val_history_), test_rel_l2=rep.test_rel_l2,
        test_density_rel_l1=rep.test_density_rel_l1, ood_rel_l2=rep.ood_rel_l2,
        ood_density_rel_l1=rep.ood_density_rel_l1, ood_family=rep.ood_family,
        test_rel_l2_mean=float(rep.test_rel_l2.mean()),
        test_density_rel_l1_mean=float(rep.test_density_rel_l1.mean()),
        ood_rel_l2_mean=float(rep.ood_rel_l2.mean()) if ko else nan,
        ood_density_rel_l1_mean=float(rep.ood_density_rel_l1.mean()) if ko else nan,
        example_density=np.asarray(density, float)[te], example_true=target[te],
        example_pred=rep.test.predicted[:k], example_pred_density=rep.test.predicted_density[:k],
        ood_example_density=np.asarray(density, float)[od] if ko else empty,
        ood_example_true=target[od] if ko else empty,
        ood_example_pred=rep.ood.predicted[:ko] if ko else empty,
        fit_seconds=rep.fit_seconds, fno_seconds_per_sample=rep.fno_seconds_per_sample,
        inversion_seconds_per_sample=rep.inversion_seconds_per_sample,
        wu_yang_seconds_per_sample=rep.wu_yang_seconds_per_sample,
        speedup=rep.inversion_seconds_per_sample / rep.fno_seconds_per_sample,
        speedup_vs_wu_yang=rep.wu_yang_seconds_per_sample / rep.fno_seconds_per_sample,
        n_parameters=model.n_parameters_)


TASKS = [potentials, exact_invert, invert, train_fno]
