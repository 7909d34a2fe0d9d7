"""Where does the se3 density error come from? Small pilot trainings on the cached hydrogen snapshots.

One setting per run, one JSON line: the density NMAE (mean |Δn| / mean n, %) on the two
``interp_*`` snapshots for

- ``target=ldos``: the network predicts the LDOS (all channels, scaled per channel by its
  maximum, or with ``--scale global`` by one global maximum, as ``Se3LdosModel`` does),
  density integrated at the Fermi level found from the predicted DOS (the ``predict`` path)
  and at the DFT Fermi level;
- ``target=rho``: one output, the density itself (scaled by its mean);
- ``target=drho``: one output, ρ − ρ_SAD (sum of hydrogenic atomic densities, the
  benchmark's baseline, or with ``--sad local`` only of the K listed neighbours, as the
  model's density head), added back to ρ_SAD;
- ``target=both``: LDOS channels (``--scale``) and the Δρ column, each loss part divided by
  its target variance (the model's ``density_head``);

and the floor: the density integrated from the *true* LDOS through the same pipeline.
Training: Adam, ``--steps`` steps of ``--batch`` random training points, cosine decay of
``--lr`` to 5 %, no output refit, float32.

Usage: python benchmarks/electrons_se3_pilot.py DATADIR --target drho --k 8 --cutoff 2.5 ...
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

A0_ANG = 0.52917721092


def local_sad(x: np.ndarray) -> np.ndarray:
    """Hydrogenic 1s densities (1/Å³) of the neighbours listed in the descriptor rows only."""
    v = x.reshape(len(x), -1, 4)
    r = np.linalg.norm(v[..., :3], axis=-1)
    return np.where(v[..., 3] > 0, np.exp(-2 * r / A0_ANG), 0.0).sum(axis=1) / (np.pi * A0_ANG**3)


def main() -> None:
    import torch

    from matterflow.electrons.descriptors.neighbours import NeighbourParams, neighbour_descriptors
    from matterflow.electrons.equivariant import _build_network
    from matterflow.electrons.hydrogen import atomic_density_sum
    from matterflow.electrons.observables import density_from_ldos, observables_from_ldos
    from matterflow.electrons.snapshot import load_snapshot

    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--target", choices=["ldos", "rho", "drho", "both"], default="ldos")
    ap.add_argument("--scale", choices=["channel", "global"], default="channel")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--cutoff", type=float, default=2.5)
    ap.add_argument("--lmax", type=int, default=2)
    ap.add_argument("--n-basis", type=int, default=8)
    ap.add_argument("--irreps", default="16x0e+8x1o+4x2e")
    ap.add_argument("--n-scalars", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--point-radial", action="store_true", help="atom–point distances in the atom features")
    ap.add_argument("--sad", choices=["full", "local"], default="full",
                    help="ρ_SAD of the whole cell, or of the K neighbours in the descriptor only")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    nb = NeighbourParams(cutoff=a.cutoff, max_neighbours=a.k)

    def load(paths):
        out = []
        for p in paths:
            s = load_snapshot(p)
            x = neighbour_descriptors(s.atoms, tuple(s.grid_shape), nb).reshape(-1, 4 * a.k)
            sad = atomic_density_sum(s.atoms, tuple(s.grid_shape), float(s.n_electrons)).reshape(-1)
            if a.sad == "local":
                sad = local_sad(x)
            out.append((p, s, x, np.asarray(s.ldos).reshape(len(x), -1), np.asarray(s.density).reshape(-1), sad))
        return out

    t0 = time.perf_counter()
    train = load(sorted(a.data.glob("train_*.h5")))
    tests = load(sorted(a.data.glob("interp_*.h5")))
    x = np.concatenate([t[2] for t in train])
    if a.target in ("ldos", "both"):
        y = np.concatenate([t[3] for t in train])
        scale = y.max(axis=0) if a.scale == "channel" else np.full(y.shape[1], y.max())
        scale = np.where(scale > 0, scale, 1.0)
        if a.target == "both":   # last column: Δρ over SAD, scaled to unit spread
            d = np.concatenate([t[4] - t[5] for t in train])
            y, scale = np.concatenate([y, d[:, None]], axis=1), np.append(scale, d.std())
    else:
        y = np.concatenate([t[4] - (t[5] if a.target == "drho" else 0.0) for t in train])[:, None]
        scale = np.array([np.abs(y).mean() if a.target == "rho" else y.std()])
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y / scale).float()
    net = _build_network(1, y.shape[1], a.cutoff, a.n_scalars, a.irreps, a.lmax, a.n_basis, 16,
                         point_radial=a.point_radial).float()
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.steps, eta_min=0.05 * a.lr)
    var_l = float(yt[:, :-1].var()) if a.target == "both" else 1.0
    gen = torch.Generator().manual_seed(a.seed)
    t1 = time.perf_counter()
    losses = []
    for _step in range(a.steps):
        idx = torch.randint(len(xt), (a.batch,), generator=gen)
        err2 = (net(xt[idx]) - yt[idx]) ** 2
        if a.target == "both":   # both parts weighted by their target variance
            loss = torch.mean(err2[:, :-1]) / var_l + torch.mean(err2[:, -1])
        else:
            loss = torch.mean(err2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    train_s = time.perf_counter() - t1
    net.eval()
    rows = []
    for p, s, xs, ldos, rho, sad in tests:
        with torch.no_grad():
            pred = np.concatenate([net(torch.from_numpy(xs[i:i + 2048]).float()).double().numpy()
                                   for i in range(0, len(xs), 2048)]) * scale
        mean = rho.mean()
        floor = observables_from_ldos(ldos.reshape(*s.grid_shape, -1), s.energy_grid_ev, s.atoms,
                                      temperature_k=s.electronic_temperature_k,
                                      ldos_smearing_ev=s.ldos_smearing_ev).density.reshape(-1)
        row = {"snapshot": p.name, "floor_true_ldos": 100 * np.abs(floor - rho).mean() / mean,
               "sad": 100 * np.abs(sad - rho).mean() / mean}
        if a.target in ("ldos", "both"):
            if a.target == "both":
                row["model_drho_head"] = 100 * np.abs(pred[:, -1] + sad - rho).mean() / mean
                pred = pred[:, :-1]
            obs = observables_from_ldos(pred.reshape(*s.grid_shape, -1), s.energy_grid_ev, s.atoms,
                                        temperature_k=s.electronic_temperature_k,
                                        ldos_smearing_ev=s.ldos_smearing_ev)
            r_mu = density_from_ldos(pred, s.energy_grid_ev, s.fermi_ev, s.electronic_temperature_k,
                                     ldos_smearing_ev=s.ldos_smearing_ev)
            row["model"] = 100 * np.abs(obs.density.reshape(-1) - rho).mean() / mean
            row["model_at_dft_mu"] = 100 * np.abs(r_mu - rho).mean() / mean
            row["fermi_err_ev"] = float(obs.fermi_ev - s.fermi_ev)
        else:
            r = pred[:, 0] + (sad if a.target == "drho" else 0.0)
            row["model"] = 100 * np.abs(r - rho).mean() / mean
        rows.append({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    print(json.dumps({"figure": "se3 pilot: density NMAE % on interp snapshots",
                      "settings": vars(a) | {"data": str(a.data)},
                      "train_seconds": round(train_s, 1), "total_seconds": round(time.perf_counter() - t0, 1),
                      "final_loss_last50": float(np.mean(losses[-50:])), "rows": rows}))


if __name__ == "__main__":
    main()
