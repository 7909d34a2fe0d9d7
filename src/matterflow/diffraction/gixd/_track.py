"""Tracking of detections through a series: Hungarian matching in (|q|, χ)."""

from __future__ import annotations

import numpy as np

__all__ = ["link_tracks"]


def link_tracks(q: list[np.ndarray], chi: list[np.ndarray], *, max_dq: float = 0.5,
                max_dchi: float = 5.0, max_gap: int = 2, width_q: list[np.ndarray] | None = None,
                width_chi: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Track id per detection of each frame (-1: none), linking frame to frame with
    scipy's linear_sum_assignment on the distance (Δq/s_q)² + (Δχ/s_χ)² (links need
    distance <= 1); a track missing for up to ``max_gap`` frames is continued.

    The scales are ``max_dq`` and ``max_dchi``, or half the track's last box extent
    (``width_q``, ``width_chi``) where that is larger: an arc whose visible part, and so its
    box centre, moves along χ stays one track, and a ring spanning χ is linked by |q|.
    """
    from scipy.optimize import linear_sum_assignment

    ids: list[np.ndarray] = []
    last_q: dict[int, float] = {}
    last_chi: dict[int, float] = {}
    last_seen: dict[int, int] = {}
    last_sq: dict[int, float] = {}
    last_sc: dict[int, float] = {}
    nxt = 0
    for f, (qf, cf) in enumerate(zip(q, chi, strict=True)):
        qf, cf = np.asarray(qf, float), np.asarray(cf, float)
        wq = np.asarray(width_q[f], float) if width_q is not None else np.zeros(len(qf))
        wc = np.asarray(width_chi[f], float) if width_chi is not None else np.zeros(len(qf))
        sq = np.maximum(max_dq, np.nan_to_num(wq) / 2)
        sc = np.maximum(max_dchi, np.nan_to_num(wc) / 2)
        out = np.full(len(qf), -1, np.int64)
        live = [t for t in last_q if f - last_seen[t] <= max_gap + 1]
        if live and len(qf):
            tq = np.array([last_q[t] for t in live])
            tc = np.array([last_chi[t] for t in live])
            dchi = np.nan_to_num(cf[:, None] - tc[None, :], nan=0.0)
            tsq = np.array([last_sq[t] for t in live])
            tsc = np.array([last_sc[t] for t in live])
            cost = (((qf[:, None] - tq[None, :]) / np.maximum(sq[:, None], tsq[None, :])) ** 2
                    + (dchi / np.maximum(sc[:, None], tsc[None, :])) ** 2)
            big = 1e6
            cost = np.where(cost <= 1.0, cost, big)
            r, c = linear_sum_assignment(cost)
            for i, j in zip(r, c, strict=True):
                if cost[i, j] < big:
                    out[i] = live[j]
        for i in np.flatnonzero(out < 0):
            out[i] = nxt
            nxt += 1
        for i, t in enumerate(out):
            last_q[int(t)], last_chi[int(t)], last_seen[int(t)] = qf[i], cf[i], f
            last_sq[int(t)], last_sc[int(t)] = sq[i], sc[i]
        ids.append(out)
    return ids
