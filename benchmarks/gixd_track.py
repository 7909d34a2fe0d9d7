"""Tracking through a simulated in-situ series (precursor -> perovskite, strain relaxing, PbI2
appearing): the fraction of its frames each planted feature is followed by one track, and the
position error against the feature's width, for the Faster R-CNN (if a model is given) and the
classical baseline on the same frames; each with the current linking defaults and with the
first version's linking (``legacy_linking``) on the same detections. One JSON line.

A planted feature (``feature_id`` of ``gixd.simulate``) counts as followed in a frame when the
detection nearest to it (any category) lies within its FWHM in |q| (and in χ for spots) and
belongs to the feature's track (the track most of its matched detections belong to).

    OMP_NUM_THREADS=1 python benchmarks/gixd_track.py [--frames 40] [--model M.pt] [--seed 2]
"""

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from matterflow.diffraction.gixd.tasks import detect, simulate, track

FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))   # FWHM / σ; labelled boxes are ±2σ


def follow(sim, det, trk, *, min_frames: int = 3) -> dict:
    n_f = len(sim.n_boxes)
    dq = float(sim.q_axis[1] - sim.q_axis[0])
    dchi = float(sim.chi_axis[1] - sim.chi_axis[0])
    per: dict[int, list] = {}
    for i in range(n_f):
        nd = int(det["n"][i])
        dq_i, dc_i = det["q_inv_nm"][i, :nd], det["chi_deg"][i, :nd]
        for j in range(int(sim.n_boxes[i])):
            b = sim.boxes[i, j]
            w_q = (b[2] - b[0]) / 4 * FWHM * dq
            w_c = (b[3] - b[1]) / 4 * FWHM * dchi
            ring = sim.labels[i, j] == 2
            same = np.flatnonzero(trk.track_id[i, :nd] >= 0)   # tracked detections, any category
            if not len(same):
                per.setdefault(int(sim.feature_id[i, j]), []).append((None, np.inf, np.inf))
                continue
            eq = np.abs(dq_i[same] - sim.q_inv_nm[i, j]) / w_q
            ec = np.zeros_like(eq) if ring else np.abs(dc_i[same] - sim.chi_deg[i, j]) / w_c
            k = int(np.argmin(np.hypot(eq, ec)))
            per.setdefault(int(sim.feature_id[i, j]), []).append(
                (int(trk.track_id[i, same[k]]), float(eq[k]), float(ec[k])))
    fracs, errs, seen = [], [], []
    for obs in per.values():
        if len(obs) < min_frames:
            continue
        seen.append(np.mean([eq < 1 and ec < 1 for _, eq, ec in obs]))
        ok_ids = [t for t, eq, ec in obs if t is not None and t >= 0 and eq < 1 and ec < 1]
        if not ok_ids:
            fracs.append(0.0)
            continue
        main = Counter(ok_ids).most_common(1)[0][0]
        good = [(eq, ec) for t, eq, ec in obs if t == main and eq < 1 and ec < 1]
        fracs.append(len(good) / len(obs))
        errs.extend(max(eq, ec) for eq, ec in good)
    fracs = np.asarray(fracs)
    return {"features": int(len(fracs)),
            "features_followed_95pct": int((fracs >= 0.95).sum()),
            "median_fraction_of_frames": round(float(np.median(fracs)), 3) if len(fracs) else None,
            "mean_fraction_of_frames": round(float(np.mean(fracs)), 3) if len(fracs) else None,
            "mean_fraction_detected_any_track": round(float(np.mean(seen)), 3) if seen else None,
            "median_error_over_fwhm": round(float(np.median(errs)), 3) if errs else None,
            "n_tracks": int(trk.n_tracks)}


# the linking of the first version (last detection as the track's position, categories mixed,
# no merging of tracks that follow one feature twice), measured beside the current defaults
LEGACY = {"history": 1, "merge_tracks": 0.0, "keep_category": False}


def run(sim, min_score: float, max_gap: int = 2, **kw) -> dict:
    d = [detect(p, **kw) for p in sim.polar]
    det = {k: np.stack([getattr(x, k) for x in d]) for k in ("q_inv_nm", "chi_deg", "scores",
                                                              "labels", "n", "width_q_inv_nm",
                                                              "width_chi_deg")}
    out = {}
    for name, extra in (("linking", {}), ("legacy_linking", LEGACY)):
        trk = track(det["q_inv_nm"], det["chi_deg"], det["scores"], det["n"],
                    det["width_q_inv_nm"], det["width_chi_deg"], det["labels"],
                    params={"min_score": min_score, "max_gap": max_gap, **extra})
        out[name] = follow(sim, det, trk)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--model-min-score", type=float, default=0.3)
    ap.add_argument("--baseline-min-score", type=float, default=0.2)
    ap.add_argument("--max-gap", type=int, default=2, help="frames a track may miss")
    ap.add_argument("--seed", type=int, default=2, help="seed of the simulated series")
    a = ap.parse_args()
    sim = simulate(params={"n_images": a.frames, "mode": "series", "seed": a.seed})
    out = {"figure": "gixd_track", "frames": a.frames, "max_gap": a.max_gap, "seed": a.seed,
           "planted_features": int(len(set(sim.feature_id[sim.feature_id >= 0].tolist())))}
    if a.model is not None:
        m = np.frombuffer(a.model.read_bytes(), np.uint8)
        out["model"] = run(sim, model=m, min_score=a.model_min_score,
                           max_gap=a.max_gap)
    out["baseline"] = run(sim, params={"method": "classical"}, min_score=a.baseline_min_score,
                          max_gap=a.max_gap)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
