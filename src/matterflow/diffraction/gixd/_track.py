"""Tracking of detections through a series: Hungarian matching in (|q|, χ)."""

from __future__ import annotations

import numpy as np

__all__ = ["link_tracks"]

_BIG = 1e6


def link_tracks(q: list[np.ndarray], chi: list[np.ndarray], *, max_dq: float = 0.5,
                max_dchi: float = 5.0, max_gap: int = 2, width_q: list[np.ndarray] | None = None,
                width_chi: list[np.ndarray] | None = None,
                labels: list[np.ndarray] | None = None, max_width_ratio: float = 0.0,
                close_gap: int = 0, history: int = 1, scores: list[np.ndarray] | None = None,
                merge_tracks: float = 0.0) -> list[np.ndarray]:
    """Track id per detection of each frame (-1: none), linking frame to frame with
    scipy's linear_sum_assignment on the distance (Δq/s_q)² + (Δχ/s_χ)² (links need
    distance <= 1); a track missing for up to ``max_gap`` frames is continued.

    The scales are ``max_dq`` and ``max_dchi``, or half the track's last box extent
    (``width_q``, ``width_chi``) where that is larger: an arc whose visible part, and so its
    box centre, moves along χ stays one track, and a ring spanning χ is linked by |q|.

    With ``labels`` (category per detection) a track keeps its category: a spot is not
    linked to a ring at the same |q|. With ``max_width_ratio`` > 1 a detection whose χ
    extent differs from the track's last one by more than that factor is not linked
    either. With ``close_gap`` > 0, track fragments are joined afterwards (gap closing): a
    track that ends and one of the same category that starts 1..``close_gap`` frames later
    within the gates of the end position, matched one to one (Hungarian) by distance.
    With ``history`` > 1 a track's gates sit at the position predicted from its last
    ``history`` detections (a Theil-Sen line against frame: median slope, median offset), not
    at its last detection: a drifting feature is followed, and a track does not jump to a
    duplicate box offset from the feature that was its only detection in one frame. With ``merge_tracks`` > 0, two
    tracks of one category that are seen together in at least 3 frames and whose median
    distance there is at most ``merge_tracks`` (in units of the gates) are one feature seen
    twice: they are merged, and in frames holding both, the lower-scored detection
    (``scores``) is left untracked.
    """
    from scipy.optimize import linear_sum_assignment

    ids: list[np.ndarray] = []
    last_q: dict[int, float] = {}
    last_chi: dict[int, float] = {}
    last_seen: dict[int, int] = {}
    last_sq: dict[int, float] = {}
    last_sc: dict[int, float] = {}
    last_wc: dict[int, float] = {}
    last_lab: dict[int, int] = {}
    hist_q: dict[int, list[float]] = {}
    hist_c: dict[int, list[float]] = {}
    hist_f: dict[int, list[int]] = {}
    nxt = 0
    for f, (qf, cf) in enumerate(zip(q, chi, strict=True)):
        qf, cf = np.asarray(qf, float), np.asarray(cf, float)
        wq = np.asarray(width_q[f], float) if width_q is not None else np.zeros(len(qf))
        wc = np.asarray(width_chi[f], float) if width_chi is not None else np.zeros(len(qf))
        lab = (np.asarray(labels[f], np.int64) if labels is not None
               else np.zeros(len(qf), np.int64))
        sq = np.maximum(max_dq, np.nan_to_num(wq) / 2)
        sc = np.maximum(max_dchi, np.nan_to_num(wc) / 2)
        out = np.full(len(qf), -1, np.int64)
        live = [t for t in last_q if f - last_seen[t] <= max_gap + 1]
        if live and len(qf):
            if history > 1:  # the gates sit at the robust prediction for this frame
                tq = np.array([_theil_sen(hist_f[t], hist_q[t], f) for t in live])
                tc = np.array([_theil_sen(hist_f[t], hist_c[t], f) for t in live])
            else:
                tq = np.array([last_q[t] for t in live])
                tc = np.array([last_chi[t] for t in live])
            dchi = np.nan_to_num(cf[:, None] - tc[None, :], nan=0.0)
            tsq = np.array([last_sq[t] for t in live])
            tsc = np.array([last_sc[t] for t in live])
            cost = (((qf[:, None] - tq[None, :]) / np.maximum(sq[:, None], tsq[None, :])) ** 2
                    + (dchi / np.maximum(sc[:, None], tsc[None, :])) ** 2)
            ok = cost <= 1.0
            if labels is not None:
                ok &= lab[:, None] == np.array([last_lab[t] for t in live])[None, :]
            if max_width_ratio > 1 and width_chi is not None:
                twc = np.array([last_wc[t] for t in live])
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.abs(np.log(np.maximum(wc[:, None], 1e-9)
                                          / np.maximum(twc[None, :], 1e-9)))
                ok &= ~(ratio > np.log(max_width_ratio))
            cost = np.where(ok, cost, _BIG)
            r, c = linear_sum_assignment(cost)
            for i, j in zip(r, c, strict=True):
                if cost[i, j] < _BIG:
                    out[i] = live[j]
        for i in np.flatnonzero(out < 0):
            out[i] = nxt
            nxt += 1
        for i, t in enumerate(out):
            t = int(t)
            hist_q.setdefault(t, []).append(float(qf[i]))
            hist_c.setdefault(t, []).append(float(cf[i]))
            hist_f.setdefault(t, []).append(f)
            if history > 1:
                hist_q[t], hist_c[t] = hist_q[t][-history:], hist_c[t][-history:]
                hist_f[t] = hist_f[t][-history:]
            last_q[t], last_chi[t] = qf[i], cf[i]
            last_seen[t] = f
            last_sq[t], last_sc[t], last_wc[t], last_lab[t] = sq[i], sc[i], wc[i], int(lab[i])
        ids.append(out)
    if merge_tracks > 0 and nxt > 1:
        ids = _merge_duplicate_tracks(ids, q, chi, width_q, width_chi, labels, scores, max_dq,
                                      max_dchi, merge_tracks)
    if close_gap > 0 and nxt > 1:
        ids = _close_gaps(ids, q, chi, width_q, width_chi, labels, max_dq, max_dchi, close_gap)
    return ids


def _theil_sen(frames: list[int], values: list[float], at: int) -> float:
    """Value at frame ``at`` of the Theil-Sen line through (frames, values): the median of the
    pairwise slopes, through the median of the points; robust to one stray detection."""
    v = np.asarray(values, float)
    fr = np.asarray(frames, float)
    ok = np.isfinite(v)
    if not ok.any():
        return float("nan")
    v, fr = v[ok], fr[ok]
    if len(v) < 3:
        return float(v[-1])
    i, j = np.triu_indices(len(v), 1)
    slope = float(np.median((v[j] - v[i]) / (fr[j] - fr[i])))
    return float(np.median(v - slope * fr) + slope * at)


def _merge_duplicate_tracks(ids: list[np.ndarray], q: list[np.ndarray], chi: list[np.ndarray],
                            width_q: list[np.ndarray] | None, width_chi: list[np.ndarray] | None,
                            labels: list[np.ndarray] | None, scores: list[np.ndarray] | None,
                            max_dq: float, max_dchi: float, limit: float) -> list[np.ndarray]:
    """Merge tracks that follow one feature twice (see :func:`link_tracks`)."""
    ids = [a.copy() for a in ids]
    nt = int(max((int(a.max()) for a in ids if a.size), default=-1)) + 1
    # per track: frame -> detection index
    where: list[dict[int, int]] = [{} for _ in range(nt)]
    for f, a in enumerate(ids):
        for i, t in enumerate(a):
            if t >= 0:
                where[int(t)][f] = i
    lab = [int(labels[min(w)][w[min(w)]]) if labels is not None and w else 0 for w in where]

    def gate(f: int, i: int) -> tuple[float, float]:
        wq = float(np.nan_to_num(width_q[f][i])) if width_q is not None else 0.0
        wc = float(np.nan_to_num(width_chi[f][i])) if width_chi is not None else 0.0
        return max(max_dq, wq / 2), max(max_dchi, wc / 2)

    def score(f: int, i: int) -> float:
        return float(scores[f][i]) if scores is not None else 0.0

    order = sorted(range(nt), key=lambda t: -len(where[t]))
    alive = set(range(nt))
    for a in order:
        if a not in alive:
            continue
        for b in order:
            if b == a or b not in alive or lab[a] != lab[b]:
                continue
            shared = sorted(set(where[a]) & set(where[b]))
            if len(shared) < 3:
                continue
            d = []
            for f in shared:
                i, j = where[a][f], where[b][f]
                sq = max(gate(f, i)[0], gate(f, j)[0])
                sc = max(gate(f, i)[1], gate(f, j)[1])
                d.append(np.hypot((q[f][i] - q[f][j]) / sq,
                                  np.nan_to_num(chi[f][i] - chi[f][j]) / sc))
            if float(np.median(d)) > limit:
                continue
            for f, j in where[b].items():  # b joins a; in shared frames the better one stays
                if f in where[a]:
                    i = where[a][f]
                    if score(f, j) > score(f, i):
                        ids[f][i] = -1
                        ids[f][j] = a
                        where[a][f] = j
                    else:
                        ids[f][j] = -1
                else:
                    ids[f][j] = a
                    where[a][f] = j
            where[b] = {}
            alive.discard(b)
    # renumber 0..k-1 in order of first appearance
    new: dict[int, int] = {}
    for a in ids:
        for t in a:
            if t >= 0 and int(t) not in new:
                new[int(t)] = len(new)
    return [np.array([new.get(int(t), -1) if t >= 0 else -1 for t in a], np.int64) for a in ids]


def _close_gaps(ids: list[np.ndarray], q: list[np.ndarray], chi: list[np.ndarray],
                width_q: list[np.ndarray] | None, width_chi: list[np.ndarray] | None,
                labels: list[np.ndarray] | None, max_dq: float, max_dchi: float,
                close_gap: int) -> list[np.ndarray]:
    """Join track fragments: ends to later starts (see :func:`link_tracks`)."""
    from scipy.optimize import linear_sum_assignment

    nt = int(max((int(a.max()) for a in ids if a.size), default=-1)) + 1
    first = np.full(nt, -1)
    last = np.full(nt, -1)
    pos: dict[tuple[int, str], tuple[float, float, float, float, int]] = {}
    for f, a in enumerate(ids):
        for i, t in enumerate(a):
            t = int(t)
            if t < 0:
                continue
            wq = float(np.nan_to_num(width_q[f][i])) if width_q is not None else 0.0
            wc = float(np.nan_to_num(width_chi[f][i])) if width_chi is not None else 0.0
            lab = int(labels[f][i]) if labels is not None else 0
            rec = (float(q[f][i]), float(chi[f][i]), max(max_dq, wq / 2), max(max_dchi, wc / 2),
                   lab)
            if first[t] < 0:
                first[t] = f
                pos[(t, "start")] = rec
            last[t] = f
            pos[(t, "end")] = rec
    cost = np.full((nt, nt), _BIG)
    for a in range(nt):
        if (a, "end") not in pos:
            continue
        qa, ca, sqa, sca, la = pos[(a, "end")]
        for b in range(nt):
            gap = first[b] - last[a]
            if a == b or (b, "start") not in pos or not 1 <= gap <= close_gap + 1:
                continue
            qb, cb, sqb, scb, lb = pos[(b, "start")]
            if la != lb:
                continue
            d = ((qa - qb) / max(sqa, sqb)) ** 2 + (np.nan_to_num(ca - cb) / max(sca, scb)) ** 2
            if d <= 1.0:
                cost[a, b] = d
    r, c = linear_sum_assignment(cost)
    succ = {int(a): int(b) for a, b in zip(r, c, strict=True) if cost[a, b] < _BIG}
    has_pred = set(succ.values())
    new = np.full(nt, -1)
    k = 0
    for t in np.argsort(first, kind="stable"):
        t = int(t)
        if t in has_pred or first[t] < 0:
            continue
        while True:  # the chain t -> succ[t] -> ... gets one id
            new[t] = k
            if t not in succ:
                break
            t = succ[t]
        k += 1
    return [np.where(a >= 0, new[np.maximum(a, 0)], -1) if a.size else a for a in ids]
