"""Tracking through a simulated in-situ series (precursor -> perovskite, strain relaxing, PbI2
appearing): the fraction of its frames each planted feature is followed by one track, and the
position error against the feature's width. One JSON line.

Detections: the Faster R-CNN (``--model``), the classical baseline, and *oracle* detections
made from the labelled boxes perturbed by noise (centres jittered, widths scaled, boxes
dropped, duplicates and false boxes added: ``--oracle-*``), which measure the linker alone.
Each is linked with the current defaults of ``gixd.track`` and with the first version's
linking (``legacy_linking``).

Assignment of planted features to tracks (one track per feature, one feature per track): a
track's detection *matches* a feature in a frame when its |q| lies within the feature's FWHM
and, for a spot, its χ within the χ FWHM, for a ring its χ extent covers at least half of the
ring's (a spot track at a ring's |q| does not follow the ring). The features and tracks are
paired by Hungarian assignment on the number of frames each track matches each feature; a
feature is followed in the frames its paired track matches it. ``detected`` counts the frames
any detection at or above the score threshold matches it (the detector's ceiling).
FWHM = the labelled box (±2σ of the visible profile) × 2.355 / 4.

    OMP_NUM_THREADS=1 python benchmarks/gixd_track.py [--frames 40] [--model M.pt] [--seed 2]
"""

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from matterflow.diffraction.gixd.tasks import MAX_DET, detect, simulate, track

FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))   # FWHM / σ; labelled boxes are ±2σ


def _features(sim) -> dict[int, list]:
    """feature id -> [(frame, q, chi, fwhm_q, fwhm_chi, ring, chi0, chi1)]."""
    dq = float(sim.q_axis[1] - sim.q_axis[0])
    dchi = float(sim.chi_axis[1] - sim.chi_axis[0])
    c0 = float(sim.chi_axis[0] - dchi / 2)
    out: dict[int, list] = {}
    for i in range(len(sim.n_boxes)):
        for j in range(int(sim.n_boxes[i])):
            b = sim.boxes[i, j]
            # the position is the labelled box's centre: the visible part of an arc that the
            # detector's horizon or missing wedge clips is all a detector can see
            out.setdefault(int(sim.feature_id[i, j]), []).append(
                (i, float(sim.q_axis[0] + ((b[0] + b[2]) / 2 - 0.5) * dq),
                 float(c0 + (b[1] + b[3]) / 2 * dchi),
                 (b[2] - b[0]) / 4 * FWHM * dq, (b[3] - b[1]) / 4 * FWHM * dchi,
                 bool(sim.labels[i, j] == 2), c0 + b[1] * dchi, c0 + b[3] * dchi))
    return out


def _match(obs: tuple, det: dict, i: int, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(matches, error / FWHM) of detections ``k`` of frame ``i`` against one observation."""
    _, q, chi, wq, wc, ring, lo, hi = obs
    eq = np.abs(det["q_inv_nm"][i, k] - q) / wq
    if ring:
        c, w = np.nan_to_num(det["chi_deg"][i, k]), np.nan_to_num(det["width_chi_deg"][i, k])
        cover = np.clip(np.minimum(hi, c + w / 2) - np.maximum(lo, c - w / 2), 0, None)
        return (eq < 1) & (cover >= 0.5 * (hi - lo)), eq
    ec = np.abs(np.nan_to_num(det["chi_deg"][i, k], nan=1e9) - chi) / wc
    return (eq < 1) & (ec < 1), np.maximum(eq, ec)


def follow(sim, det: dict, trk, *, min_score: float, min_frames: int = 3) -> dict:
    feats = {f: o for f, o in _features(sim).items() if len(o) >= min_frames}
    fids = sorted(feats)
    nt = int(trk.n_tracks)
    hits = np.zeros((len(fids), max(nt, 1)))
    errs: dict[tuple[int, int], list] = {}
    detected = np.zeros(len(fids))
    for a, f in enumerate(fids):
        for obs in feats[f]:
            i = obs[0]
            nd = int(det["n"][i])
            ok = np.flatnonzero(det["scores"][i, :nd] >= min_score)
            m, _ = _match(obs, det, i, ok)
            detected[a] += bool(m.any())
            k = np.flatnonzero(trk.track_id[i, :nd] >= 0)
            if not len(k):
                continue
            m, e = _match(obs, det, i, k)
            for t in set(int(x) for x in trk.track_id[i, k[m]]):
                hits[a, t] += 1
                errs.setdefault((a, t), []).append(float(e[m][trk.track_id[i, k[m]] == t].min()))
    r, c = linear_sum_assignment(-hits)
    frac = np.zeros(len(fids))
    err: list[float] = []
    for a, t in zip(r, c, strict=True):
        if hits[a, t] > 0:
            frac[a] = hits[a, t] / len(feats[fids[a]])
            err.extend(errs[(a, t)])
    n_obs = np.array([len(feats[f]) for f in fids])
    det_frac = detected / np.maximum(n_obs, 1)
    missed = [{"q": round(float(np.mean([o[1] for o in feats[f]])), 2),
               "ring": bool(feats[f][0][5]), "frames": int(n_obs[a]),
               "followed": round(float(frac[a]), 2), "detected": round(float(det_frac[a]), 2)}
              for a, f in enumerate(fids) if frac[a] < 0.95]
    return {"features": len(fids),
            "features_followed_95pct": int((frac >= 0.95).sum()),
            "features_detected_95pct": int((det_frac >= 0.95).sum()),
            "mean_fraction_followed": round(float(frac.mean()), 3),
            "mean_fraction_detected": round(float(det_frac.mean()), 3),
            "median_error_over_fwhm": round(float(np.median(err)), 3) if err else None,
            "n_tracks": nt, "not_followed": missed}


def oracle(sim, rng: np.random.Generator, *, jitter: float, drop: float, dup: float,
           false: float) -> dict:
    """Detections from the labelled boxes: centres jittered by ``jitter`` × the box extent
    (normal), extents scaled by exp(N(0, jitter)), a fraction ``drop`` dropped, ``dup``
    duplicated 0.3 extents off with a lower score, ``false`` boxes per frame added at random."""
    dq = float(sim.q_axis[1] - sim.q_axis[0])
    dchi = float(sim.chi_axis[1] - sim.chi_axis[0])
    q0 = float(sim.q_axis[0] - dq / 2)
    c0 = float(sim.chi_axis[0] - dchi / 2)
    nf = len(sim.n_boxes)
    det = {k: np.full((nf, MAX_DET), np.nan) for k in ("q_inv_nm", "chi_deg", "scores",
                                                         "width_q_inv_nm", "width_chi_deg")}
    det["labels"] = np.zeros((nf, MAX_DET), np.int64)
    det["n"] = np.zeros(nf, np.int64)
    for i in range(nf):
        rows = []
        for j in range(int(sim.n_boxes[i])):
            if rng.random() < drop:
                continue
            b = sim.boxes[i, j]
            wq, wc = (b[2] - b[0]) * dq, (b[3] - b[1]) * dchi
            q = q0 + (b[0] + b[2]) / 2 * dq + rng.normal(0, jitter) * wq
            c = c0 + (b[1] + b[3]) / 2 * dchi + rng.normal(0, jitter) * wc
            s = rng.uniform(0.5, 1.0)
            sc = np.exp(rng.normal(0, jitter, 2))
            rows.append((q, c, s, wq * sc[0], wc * sc[1], int(sim.labels[i, j])))
            if rng.random() < dup:
                rows.append((q + 0.3 * wq * rng.choice([-1, 1]), c, s * 0.8, wq * 1.3, wc,
                             int(sim.labels[i, j])))
        for _ in range(rng.poisson(false)):
            rows.append((rng.uniform(sim.q_axis[0], sim.q_axis[-1]), rng.uniform(0, 90),
                         rng.uniform(0.3, 0.7), 0.4, rng.uniform(3, 30), 1))
        rows = rows[:MAX_DET]
        for k, (q, c, s, wq, wc, lab) in enumerate(rows):
            det["q_inv_nm"][i, k], det["chi_deg"][i, k], det["scores"][i, k] = q, c, s
            det["width_q_inv_nm"][i, k], det["width_chi_deg"][i, k] = wq, wc
            det["labels"][i, k] = lab
        det["n"][i] = len(rows)
    return det


# the linking of the first version (last detection as the track's position, categories mixed,
# no merging of tracks that follow one feature twice), measured beside the current defaults
LEGACY = {"history": 1, "merge_tracks": 0.0, "keep_category": False, "close_gap": 0}


def link(sim, det: dict, min_score: float, max_gap: int) -> dict:
    out = {}
    for name, extra in (("linking", {}), ("legacy_linking", LEGACY)):
        trk = track(det["q_inv_nm"], det["chi_deg"], det["scores"], det["n"],
                    det["width_q_inv_nm"], det["width_chi_deg"], det["labels"],
                    params={"min_score": min_score, "max_gap": max_gap, **extra})
        out[name] = follow(sim, det, trk, min_score=min_score)
    return out


def run(sim, min_score: float, max_gap: int = 2, **kw) -> dict:
    d = [detect(p, **kw) for p in sim.polar]
    det = {k: np.stack([getattr(x, k) for x in d]) for k in ("q_inv_nm", "chi_deg", "scores",
                                                              "labels", "n", "width_q_inv_nm",
                                                              "width_chi_deg")}
    return link(sim, det, min_score, max_gap)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--model-min-score", type=float, default=0.3)
    ap.add_argument("--baseline-min-score", type=float, default=0.2)
    ap.add_argument("--max-gap", type=int, default=2, help="frames a track may miss")
    ap.add_argument("--seed", type=int, default=2, help="seed of the simulated series")
    ap.add_argument("--oracle-jitter", type=float, default=0.1)
    ap.add_argument("--oracle-drop", type=float, default=0.05)
    ap.add_argument("--oracle-dup", type=float, default=0.1)
    ap.add_argument("--oracle-false", type=float, default=1.0)
    ap.add_argument("--no-baseline", action="store_true")
    a = ap.parse_args()
    grid = {}
    if a.model is not None:   # the series on the model's polar grid
        from matterflow.diffraction.gixd._model import load_checkpoint

        n_chi, n_q = load_checkpoint(str(a.model))[1]["shape"]
        grid = {"n_chi": int(n_chi), "n_q": int(n_q)}
    sim = simulate(params={"n_images": a.frames, "mode": "series", "seed": a.seed, **grid})
    out = {"figure": "gixd_track", "frames": a.frames, "max_gap": a.max_gap, "seed": a.seed,
           "polar_shape": list(sim.polar.shape[1:]),
           "planted_features": int(len(set(sim.feature_id[sim.feature_id >= 0].tolist())))}
    rng = np.random.default_rng(a.seed)
    det = oracle(sim, rng, jitter=a.oracle_jitter, drop=a.oracle_drop, dup=a.oracle_dup,
                 false=a.oracle_false)
    out["oracle"] = {"jitter": a.oracle_jitter, "drop": a.oracle_drop, "dup": a.oracle_dup,
                     "false_per_frame": a.oracle_false, **link(sim, det, 0.3, a.max_gap)}
    if a.model is not None:
        m = np.frombuffer(a.model.read_bytes(), np.uint8)
        out["model"] = run(sim, model=m, min_score=a.model_min_score, max_gap=a.max_gap)
    if not a.no_baseline:
        out["baseline"] = run(sim, params={"method": "classical"},
                              min_score=a.baseline_min_score, max_gap=a.max_gap)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
