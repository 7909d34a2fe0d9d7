"""SE(3)-equivariant atoms → grid LDOS model (e3nn), a drop-in :class:`LdosModel`.

The model needs the atoms around each grid point, not invariant descriptors.
To keep the descriptors → LDOS interface (so ``predict``, chunked inference,
``evaluate`` and the ASE calculator work unchanged) the "descriptor" of a grid
point is its **neighbour list**: the vectors (Å) from the grid point to its
``max_neighbours`` nearest atom images within ``cutoff`` (all periodic images,
found with :func:`~matterflow.electrons.descriptors._grid.image_atoms`, so the
cut-off is not limited to half the box) and their species codes (index + 1;
0 marks padding). Descriptor kind ``"neighbours"``, :class:`NeighbourParams`.

The network (:class:`Se3LdosModel`, architecture ``"se3"``):

1. atom embeddings: one-hot species → scalars (``n_scalars x 0e``);
2. equivariant atom–atom messages among the neighbours of the grid point
   (pairs closer than ``cutoff``; spherical harmonics ``l ≤ lmax`` of the
   pair vector, radial MLP on a Bessel basis with a smooth cosine envelope,
   ``FullyConnectedTensorProduct``) → ``hidden_irreps``, gated non-linearity;
3. atom → grid-point convolution (the same construction with the atom →
   point vectors) to scalars only, then a small MLP → LDOS channels;
4. with ``density_head=True`` a second network of the same construction predicts the
   density as a residual over the sum of atomic densities of the listed neighbours,
   ``n = n_SAD + Δn`` (hydrogenic 1s densities for H, 0 for other species), and
   ``predict``/``evaluate`` take the density from it instead of integrating the LDOS
   (the DOS, Fermi level and band energy still come from the LDOS).

All outputs are scalars of vectors relative to the grid point, so rotating
and translating atoms and grid together leaves them unchanged, and sums over
neighbours make them invariant to the atom order.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from matterflow.core.errors import InputError, NotFittedError
from matterflow.electrons.descriptors.neighbours import (
    NeighbourParams,
    n_neighbour_features,
    neighbour_descriptors,
)
from matterflow.electrons.model import LdosModel, LdosSetup, register_architecture
from matterflow.electrons.scaling import Scaler

__all__ = ["NeighbourParams", "neighbour_descriptors", "n_neighbour_features", "Se3LdosModel",
           "neighbour_sad_density"]

A0_ANG = 0.52917721092   # Bohr radius, Å


def neighbour_sad_density(x: np.ndarray, species: tuple[str, ...]) -> np.ndarray:
    """Sum of atomic densities (1/Å³) of the atoms listed in neighbour-list rows ``x`` (n, 4K).

    Hydrogenic 1s ``exp(-2r/a0) / (pi a0^3)`` for each listed H; other species add 0.
    Only the ``max_neighbours`` listed atoms count (the model's baseline, not the whole
    cell's :func:`~matterflow.electrons.hydrogen.atomic_density_sum`).
    """
    v = np.asarray(x, dtype=np.float64).reshape(len(x), -1, 4)
    code = np.rint(v[..., 3]).astype(int)
    h = species.index("H") + 1 if "H" in species else -1
    r = np.linalg.norm(v[..., :3], axis=-1)
    return np.where(code == h, np.exp(-2.0 * r / A0_ANG), 0.0).sum(axis=1) / (np.pi * A0_ANG**3)


def _build_network(n_species: int, n_out: int, cutoff: float, n_scalars: int, hidden_irreps: str,
                   lmax: int, n_basis: int, radial_hidden: int, density_head: bool = False,
                   point_radial: bool = False):
    import torch
    from e3nn import o3
    from e3nn.nn import FullyConnectedNet, Gate

    class Radial(torch.nn.Module):
        def __init__(self, n_weights: int):
            super().__init__()
            self.register_buffer("freq", torch.arange(1, n_basis + 1) * math.pi / cutoff)
            self.mlp = FullyConnectedNet([n_basis, radial_hidden, n_weights], torch.nn.functional.silu)

        def forward(self, r):
            r = r.clamp(min=1e-9)[:, None]
            basis = torch.sin(self.freq * r) / r
            env = 0.5 * (torch.cos(math.pi * r / cutoff) + 1.0) * (r < cutoff)
            return self.mlp(basis) * env

    class Net(torch.nn.Module):
        def __init__(self, n_out: int):
            super().__init__()
            self.sh_irreps = o3.Irreps.spherical_harmonics(lmax)
            self.embed = torch.nn.Linear(n_species, n_scalars, bias=False)
            # point_radial: each atom's distance to the grid point (an invariant) enters its
            # scalar features, so an atom–atom message knows the whole point–i–j triangle
            self.point_rad = Radial(n_scalars) if point_radial else None
            node0 = o3.Irreps(f"{n_scalars}x0e")
            hid = o3.Irreps(hidden_irreps).simplify()
            scal = o3.Irreps([(m, ir) for m, ir in hid if ir.l == 0])
            gated = o3.Irreps([(m, ir) for m, ir in hid if ir.l > 0])
            gates = o3.Irreps(f"{gated.num_irreps}x0e")
            self.gate = Gate(scal, [torch.nn.functional.silu], gates, [torch.sigmoid], gated)
            self.tp1 = o3.FullyConnectedTensorProduct(node0, self.sh_irreps, self.gate.irreps_in,
                                                      shared_weights=False)
            self.rad1 = Radial(self.tp1.weight_numel)
            self.self1 = o3.Linear(node0, self.gate.irreps_out)
            out_sc = o3.Irreps(f"{n_scalars}x0e")
            self.tp2 = o3.FullyConnectedTensorProduct(self.gate.irreps_out, self.sh_irreps, out_sc,
                                                      shared_weights=False)
            self.rad2 = Radial(self.tp2.weight_numel)
            self.head = torch.nn.Sequential(torch.nn.Linear(n_scalars, 2 * n_scalars), torch.nn.SiLU(),
                                            torch.nn.Linear(2 * n_scalars, n_out))
            self.n_species = n_species

        def forward(self, x):
            return self.head[-1](self.features(x))

        def features(self, x):
            """Input of the output layer (refitted by least squares after training)."""
            b, k = x.shape[0], x.shape[1] // 4
            x = x.reshape(b, k, 4)
            vec, code = x[..., :3], x[..., 3].round().long()
            mask = code > 0
            onehot = torch.nn.functional.one_hot((code - 1).clamp(min=0), self.n_species).to(x.dtype)
            h0 = self.embed(onehot)
            if self.point_rad is not None:
                h0 = h0 + self.point_rad(vec.norm(dim=-1).reshape(-1)).reshape(b, k, -1)
            h0 = h0 * mask[..., None]                                        # (b, k, n_scalars)
            # atom–atom messages among the neighbours of each point (vector a -> b)
            pair = vec[:, None, :, :] - vec[:, :, None, :]                   # (b, k_i, k_j, 3): i -> j
            rij = pair.norm(dim=-1)
            pm = mask[:, :, None] & mask[:, None, :] & (rij < cutoff)
            pm = pm & ~torch.eye(k, dtype=torch.bool, device=x.device)[None]
            bi, ii, jj = torch.nonzero(pm, as_tuple=True)
            ev = pair[bi, ii, jj]
            sh = o3.spherical_harmonics(self.sh_irreps, ev, normalize=True, normalization="component")
            msg = self.tp1(h0[bi, jj], sh, self.rad1(ev.norm(dim=-1)))
            agg = torch.zeros(b, k, msg.shape[-1], dtype=x.dtype, device=x.device)
            agg.index_put_((bi, ii), msg, accumulate=True)
            h1 = self.gate(agg / math.sqrt(max(k, 1))) + self.self1(h0)
            h1 = h1 * mask[..., None]
            # atom -> grid point
            ba, aa = torch.nonzero(mask, as_tuple=True)
            va = -vec[ba, aa]                                                # atom -> point
            sh2 = o3.spherical_harmonics(self.sh_irreps, va, normalize=True, normalization="component")
            m2 = self.tp2(h1[ba, aa], sh2, self.rad2(va.norm(dim=-1)))
            g = torch.zeros(b, m2.shape[-1], dtype=x.dtype, device=x.device)
            g.index_add_(0, ba, m2)
            return self.head[:-1](g / math.sqrt(max(k, 1)))

    net = Net(n_out)
    # density_head: a second network of the same size, one output, for the density residual
    # over the neighbours' atomic densities (sharing the LDOS network's features made both worse)
    net.dens_net = Net(1) if density_head else None
    return net


@register_architecture("se3")
class Se3LdosModel(LdosModel):
    """e3nn network neighbour lists → LDOS (see the module docstring).

    Parameters
    ----------
    n_scalars : int
        Width of the scalar channels (embeddings, atom→grid output).
    hidden_irreps : str
        Irreps of the atom features after the message passing (e.g. ``"16x0e+8x1o+4x2e"``).
    lmax : int
        Highest degree of the spherical harmonics.
    n_basis, radial_hidden : int
        Bessel functions and hidden width of the radial MLPs.
    epochs, batch_size, learning_rate, seed : training settings (Adam with a cosine learning
        rate decay, MSE on the scaled LDOS, the weights of the best validation epoch kept).
    points_per_epoch : int, optional
        Grid points drawn (without replacement) for each epoch; default all.
    refit_output : bool
        After training, the output layer solved by least squares on the training points
        (:func:`~matterflow.electrons.model.refit_output_layer`): the training DOS is then
        reproduced exactly, which removes the offset of the band energy Adam leaves.
    dtype : ``"float32"`` or ``"float64"``.
    setup : LdosSetup, optional; its ``descriptor_params`` are the :class:`NeighbourParams`.
    density_head : bool
        Also predict the density directly, as a residual over
        :func:`neighbour_sad_density` (then ``fit`` needs ``density``, the DFT density of
        each training point, and ``predict``/``evaluate`` use this density). A second network
        of the same size, trained in the same steps on the same points (loss = MSE(LDOS) /
        Var(LDOS) + MSE(Δn) / Var(Δn), scaled; the networks share no weights).
    point_radial : bool
        Add a learned radial function of each atom's distance to the grid point to its
        scalar features (an invariant; the atom–atom messages then see the whole
        point–atom–atom triangle, not only the angle at the atom).
    """

    def __init__(self, n_scalars: int = 16, hidden_irreps: str = "16x0e+8x1o+4x2e", lmax: int = 2,
                 n_basis: int = 8, radial_hidden: int = 16, epochs: int = 20, batch_size: int = 256,
                 learning_rate: float = 3e-3, seed: int = 0, dtype: str = "float32",
                 output_scaling: str = "max", setup: LdosSetup | None = None,
                 neighbours: NeighbourParams | None = None, refit_output: bool = True,
                 points_per_epoch: int | None = None, density_head: bool = False,
                 point_radial: bool = False):
        if dtype not in ("float32", "float64"):
            raise InputError(f"dtype: float32 or float64 is accepted; got {dtype!r}")
        self.n_scalars, self.hidden_irreps, self.lmax = int(n_scalars), hidden_irreps, int(lmax)
        self.n_basis, self.radial_hidden = int(n_basis), int(radial_hidden)
        self.epochs, self.batch_size, self.learning_rate, self.seed = int(epochs), int(batch_size), \
            float(learning_rate), int(seed)
        self.dtype, self.output_scaling, self.setup = dtype, output_scaling, setup
        self.refit_output = bool(refit_output)
        self.density_head = bool(density_head)
        self.point_radial = bool(point_radial)
        self.points_per_epoch = None if points_per_epoch is None else int(points_per_epoch)
        if neighbours is None:
            dp = setup.descriptor_params if setup is not None and setup.descriptor_kind == "neighbours" else {}
            neighbours = NeighbourParams(**dp)
        self.neighbours = neighbours

    def _torch_dtype(self):
        import torch

        return torch.float64 if self.dtype == "float64" else torch.float32

    def _net(self, n_out: int):
        return _build_network(len(self.neighbours.species), n_out, self.neighbours.cutoff, self.n_scalars,
                              self.hidden_irreps, self.lmax, self.n_basis, self.radial_hidden,
                              self.density_head, self.point_radial).to(self._torch_dtype())

    def _check_x(self, x: np.ndarray, name: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1, np.asarray(x).shape[-1])
        want = n_neighbour_features(self.neighbours)
        if x.shape[1] != want:
            raise InputError(f"{name}: {want} columns (4 x max_neighbours) expected from the "
                             f"'neighbours' descriptors; got {x.shape[1]}")
        if not np.all(np.isfinite(x)):
            raise InputError(f"{name}: contains NaN or infinite values")
        codes = x.reshape(len(x), -1, 4)[..., 3]
        if codes.size and codes.max() > len(self.neighbours.species):
            raise InputError(f"{name}: species code {int(codes.max())} beyond the model's species "
                             f"{list(self.neighbours.species)}")
        return x

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, *, checkpoint_dir: str | os.PathLike | None = None,
            on_epoch: Any = None, val_fraction: float = 0.1, density: np.ndarray | None = None,
            density_val: np.ndarray | None = None, **kwargs: Any) -> Se3LdosModel:
        """Adam on the mean squared error of the scaled LDOS, random batches of grid points.

        Without ``x_val``/``y_val`` a random ``val_fraction`` of the points is held out;
        the weights of the epoch with the lowest validation loss are kept. With
        ``checkpoint_dir`` the state is saved after each epoch and a killed run
        resumes from the last one. ``on_epoch(epoch, val_loss)`` after each epoch.
        ``density``/``density_val`` (1/Å³, one per point) train the density head.
        """
        import copy
        import time

        import torch

        from matterflow.electrons.training import TrainResult

        t_start = time.perf_counter()
        x = self._check_x(x, "x")
        y = np.asarray(y, dtype=np.float64).reshape(len(x), -1)
        if self.density_head:
            if density is None:
                raise InputError("density: density_head=True needs the DFT density of every training point "
                                 "(fit(..., density=...))")
            density = np.asarray(density, dtype=np.float64).reshape(-1)
            if density.shape[0] != len(x):
                raise InputError(f"density: one value per training point is needed ({len(x)}); "
                                 f"got {density.shape[0]}")
            if (x_val is None) != (density_val is None):
                raise InputError("density_val: needed with x_val when density_head=True (and only then)")
        if x_val is None or y_val is None:
            perm = np.random.default_rng(self.seed).permutation(len(x))
            n_val = max(1, int(round(val_fraction * len(x))))
            x_val, y_val, x, y = x[perm[:n_val]], y[perm[:n_val]], x[perm[n_val:]], y[perm[n_val:]]
            if self.density_head:
                density_val, density = density[perm[:n_val]], density[perm[n_val:]]
        x_val = self._check_x(x_val, "x_val")
        y_val = np.asarray(y_val, dtype=np.float64).reshape(len(x_val), -1)
        if self.density_head:
            sp = tuple(self.neighbours.species)
            dres = density - neighbour_sad_density(x, sp)
            dres_val = np.asarray(density_val, dtype=np.float64).reshape(-1) - neighbour_sad_density(x_val, sp)
            self.density_scale_ = float(np.std(dres)) if np.std(dres) > 0 else 1.0
        self.y_scaler_ = Scaler(self.output_scaling).fit(y)   # type: ignore[arg-type]
        self.n_energies_ = y.shape[1]
        torch.manual_seed(self.seed)
        net = self._net(self.n_energies_)
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(self.epochs, 1),
                                                           eta_min=0.05 * self.learning_rate)
        res = TrainResult(state_dict={})
        start = 0
        ckpt = None
        if checkpoint_dir is not None:
            from pathlib import Path

            ckpt = Path(checkpoint_dir) / "se3.pt"
            if ckpt.is_file():
                blob = torch.load(ckpt, weights_only=True)
                net.load_state_dict(blob["net"])
                opt.load_state_dict(blob["opt"])
                sched.load_state_dict(blob["sched"])
                res.state_dict = blob["best"]
                res.train_loss, res.val_loss = list(blob["train_loss"]), list(blob["val_loss"])
                res.best_epoch, res.best_val_loss = int(blob["best_epoch"]), float(blob["best_val_loss"])
                start = int(blob["epoch"]) + 1
                res.resumed_from_epoch = start - 1
        dt = self._torch_dtype()
        xt = torch.from_numpy(x).to(dt)
        yt = torch.from_numpy(self.y_scaler_.transform(y)).to(dt)
        xvt = torch.from_numpy(x_val).to(dt)
        yvt = torch.from_numpy(self.y_scaler_.transform(y_val)).to(dt)
        if self.density_head:   # the density residual as one more (last) target column
            var_l = max(float(yt.var()), 1e-30)
            yt = torch.cat([yt, torch.from_numpy(dres / self.density_scale_).to(dt)[:, None]], dim=1)
            yvt = torch.cat([yvt, torch.from_numpy(dres_val / self.density_scale_).to(dt)[:, None]], dim=1)

        def out(xb):
            if not self.density_head:
                return net(xb)
            return torch.cat([net(xb), net.dens_net(xb)], dim=1)

        def point_loss(err2):   # (b,) squared error per point, LDOS and density parts equally weighted
            if not self.density_head:
                return err2.mean(dim=1)
            return err2[:, :-1].mean(dim=1) / var_l + err2[:, -1]
        n_epoch = len(xt) if self.points_per_epoch is None else min(len(xt), self.points_per_epoch)
        for epoch in range(start, self.epochs):
            gen = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            perm = torch.randperm(len(xt), generator=gen)[:n_epoch]
            tot = 0.0
            net.train()
            for s in range(0, n_epoch, self.batch_size):
                bidx = perm[s:s + self.batch_size]
                loss = point_loss((out(xt[bidx]) - yt[bidx]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * len(bidx)
            sched.step()
            net.eval()
            with torch.no_grad():
                val = sum(float(point_loss((out(xvt[s:s + 4096]) - yvt[s:s + 4096]) ** 2).sum())
                          for s in range(0, len(xvt), 4096)) / len(yvt)
            if not (np.isfinite(val) and np.isfinite(tot)):
                from matterflow.core.errors import ComputeError

                raise ComputeError(f"Se3LdosModel: loss not finite at epoch {epoch + 1}; lower learning_rate "
                                   f"(now {self.learning_rate})")
            res.train_loss.append(tot / n_epoch)
            res.val_loss.append(val)
            if val < res.best_val_loss:
                res.best_val_loss, res.best_epoch = val, epoch
                res.state_dict = copy.deepcopy(net.state_dict())
            if ckpt is not None:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                tmp = ckpt.with_name("se3.pt.tmp")
                torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                            "epoch": epoch, "best": res.state_dict, "train_loss": res.train_loss,
                            "val_loss": res.val_loss, "best_epoch": res.best_epoch,
                            "best_val_loss": res.best_val_loss}, tmp)
                os.replace(tmp, ckpt)
            if on_epoch is not None:
                on_epoch(epoch, val)
        if res.state_dict:
            net.load_state_dict(res.state_dict)
        net.eval()
        if self.refit_output:
            from matterflow.electrons.model import refit_output_layer

            refit_output_layer(net, x, self.y_scaler_.transform(y), last=net.head[-1], body=net.features,
                               chunk=4096)
            if self.density_head:
                refit_output_layer(net, x, (dres / self.density_scale_)[:, None], last=net.dens_net.head[-1],
                                   body=net.dens_net.features, chunk=4096)
        res.epochs_run = len(res.train_loss)
        res.seconds = time.perf_counter() - t_start
        self.history_ = res
        self.train_loss_ = res.train_loss
        self.network_ = net
        return self

    def predict(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """LDOS (n, n_energies) of neighbour-list descriptors (n, 4 x max_neighbours)."""
        import torch

        if not hasattr(self, "network_"):
            raise NotFittedError("Se3LdosModel: call fit() (or load a saved model) before predict")
        x = self._check_x(x, "descriptors")
        out = np.empty((len(x), self.n_energies_))
        dt = self._torch_dtype()
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                pred = self.network_(torch.from_numpy(x[s:s + batch_size]).to(dt)).double().numpy()
                out[s:s + batch_size] = self.y_scaler_.inverse_transform(pred)
        return out

    def predict_ldos_and_density(self, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """LDOS (n, n_energies) and density (n,) 1/Å³ from the density head (``density_head=True``)."""
        import torch

        if not hasattr(self, "network_"):
            raise NotFittedError("Se3LdosModel: call fit() (or load a saved model) before predict")
        if not self.density_head:
            raise InputError("Se3LdosModel: this model has no density head (density_head=False); "
                             "integrate its LDOS (predict_observables) for the density")
        x = self._check_x(x, "descriptors")
        ldos, rho = np.empty((len(x), self.n_energies_)), np.empty(len(x))
        dt, net = self._torch_dtype(), self.network_
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                xb = torch.from_numpy(x[s:s + batch_size]).to(dt)
                ldos[s:s + batch_size] = self.y_scaler_.inverse_transform(net(xb).double().numpy())
                rho[s:s + batch_size] = net.dens_net(xb).double().numpy()[:, 0] * self.density_scale_
        return ldos, rho + neighbour_sad_density(x, tuple(self.neighbours.species))

    def predict_density(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Density (n,) 1/Å³ of neighbour-list descriptors from the density head."""
        return self.predict_ldos_and_density(x, batch_size)[1]

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "network_"):
            raise NotFittedError("Se3LdosModel: nothing to save before fit()")
        return {"n_scalars": self.n_scalars, "hidden_irreps": self.hidden_irreps, "lmax": self.lmax,
                "n_basis": self.n_basis, "radial_hidden": self.radial_hidden, "epochs": self.epochs,
                "batch_size": self.batch_size, "learning_rate": self.learning_rate, "seed": self.seed,
                "dtype": self.dtype, "output_scaling": self.output_scaling,
                "refit_output": self.refit_output, "points_per_epoch": self.points_per_epoch,
                "neighbours": self.neighbours.model_dump(mode="json"), "n_energies": int(self.n_energies_),
                "density_head": self.density_head, "point_radial": self.point_radial,
                "density_scale": float(getattr(self, "density_scale_", 1.0)),
                "y_scaler": self.y_scaler_.to_dict(),
                "state_dict": {k: v.clone() for k, v in self.network_.state_dict().items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Se3LdosModel:
        nb = dict(data["neighbours"])
        nb["species"] = tuple(nb["species"])
        m = cls(data["n_scalars"], data["hidden_irreps"], data["lmax"], data["n_basis"], data["radial_hidden"],
                data["epochs"], data["batch_size"], data["learning_rate"], data["seed"], data["dtype"],
                data["output_scaling"], neighbours=NeighbourParams(**nb),
                refit_output=bool(data.get("refit_output", True)),
                points_per_epoch=data.get("points_per_epoch"),
                density_head=bool(data.get("density_head", False)),
                point_radial=bool(data.get("point_radial", False)))
        m.density_scale_ = float(data.get("density_scale", 1.0))
        m.n_energies_ = int(data["n_energies"])
        m.y_scaler_ = Scaler.from_dict(data["y_scaler"])
        net = m._net(m.n_energies_)
        net.load_state_dict(data["state_dict"])
        net.eval()
        m.network_ = net
        return m
