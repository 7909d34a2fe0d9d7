"""Tracking of detections through a series: Hungarian matching in (|q|, χ)."""

from __future__ import annotations

import numpy as np

__all__ = ["link_tracks"]


def link_tracks(q: list[np.ndarray], chi: list[np.ndarray], *, max_dq: float = 0.5,
                max_dchi: float = 5.0, max_gap: int = 2) -> list[np.ndarray]:
    """Track id per detection of each frame (-1: none), linking frame to frame with
    scipy's linear_sum_assignment on the distance (Δq/max_dq)² + (Δχ/max_dchi)²; a track
    missing for up to ``max_gap`` frames is continued."""
    from scipy.optimize import linear_sum_assignment

    ids: list[np.ndarray] = []
    last_q: dict[int, float] = {}
    last_chi: dict[int, float] = {}
    last_seen: dict[int, int] = {}
    nxt = 0
    for f, (qf, cf) in enumerate(zip(q, chi, strict=True)):
        qf, cf = np.asarray(qf, float), np.asarray(cf, float)
        out = np.full(len(qf), -1, np.int64)
        live = [t for t in last_q if f - last_seen[t] <= max_gap + 1]
        if live and len(qf):
            tq = np.array([last_q[t] for t in live])
            tc = np.array([last_chi[t] for t in live])
            dchi = np.nan_to_num(cf[:, None] - tc[None, :], nan=0.0)
            cost = ((qf[:, None] - tq[None, :]) / max_dq) ** 2 + (dchi / max_dchi) ** 2
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
        ids.append(out)
    return ids
