"""gixd: metrics against a hand-computed AP, simulator labels, training/detection, bad input."""

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.diffraction.gixd._metrics import average_precision, box_iou
from matterflow.diffraction.gixd.tasks import detect, evaluate, simulate, train


def test_iou_by_hand():
    assert box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2]])[0, 0] == pytest.approx(1 / 3)


def test_ap_hand_computed():
    # one image, two GT boxes; three detections sorted by score: TP, FP, TP
    gt = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)]
    det = [np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], float)]
    r = average_precision(det, [np.array([0.9, 0.8, 0.7])], [np.array([1, 1, 1])],
                          gt, [np.array([1, 1])])
    # precision envelope: 1 for recall <= 0.5 (51 of 101 points), 2/3 above (50 points)
    expected = (51 * 1.0 + 50 * (2 / 3)) / 101
    assert r.ap50 == pytest.approx(expected)
    assert r.ap == pytest.approx(expected)   # exact boxes: same at every IoU threshold


def test_ap_offset_box_fails_high_iou():
    gt = [np.array([[0, 0, 10, 10]], float)]
    det = [np.array([[2, 0, 12, 10]], float)]    # IoU = 80/120 = 0.667
    r = average_precision(det, [np.array([1.0])], [np.array([1])], gt, [np.array([1])])
    assert r.ap50 == pytest.approx(1.0)
    # thresholds 0.50, 0.55, 0.60, 0.65 pass, 0.70..0.95 fail
    assert r.ap == pytest.approx(4 / 10)


@pytest.fixture(scope="module")
def small():
    return simulate(params={"n_images": 3, "n_q": 64, "n_chi": 64, "detector_px": 128})


def test_simulated_labels_lie_inside_the_image(small):
    assert small.n_boxes.sum() > 0
    for i in range(3):
        b = small.boxes[i, :small.n_boxes[i]]
        assert (b[:, :2] >= 0).all() and (b[:, 2] <= 64).all() and (b[:, 3] <= 64).all()
        assert set(small.labels[i, :small.n_boxes[i]]) <= {1, 2}


def test_perovskite_100_peak_position():
    # cubic a = 6.29 Å: |G(100)| = 2π/a = 9.989 1/nm, (100) fibre: (001) along q_z (χ = 0),
    # (100) in-plane (χ = 90)
    from matterflow.diffraction.gixd._sim import Phase, phase_features

    feats = phase_features(Phase("perovskite", (1, 0, 0), 1.0, 0.0, 50.0), (3, 25))
    q100 = [f for f in feats if abs(f.q - 2 * np.pi / 0.629) < 0.01]
    assert {round(f.chi) for f in q100} == {0, 90}


def test_train_detect_evaluate_and_resume(small, tmp_path):
    ck = tmp_path / "ck.pt"
    tr = train(small.polar, small.boxes, small.labels, small.n_boxes,
               params={"steps": 1, "batch_size": 2, "width": 16, "checkpoint_path": str(ck)})
    assert tr.steps_done == 1 and ck.exists()
    tr2 = train(small.polar, small.boxes, small.labels, small.n_boxes, small.polar[:2],
                small.boxes[:2], small.labels[:2], small.n_boxes[:2],
                params={"steps": 2, "batch_size": 2, "width": 16, "checkpoint_path": str(ck)})
    assert tr2.steps_done == 2 and len(tr2.losses) == 2   # resumed: one more step
    assert 0 <= tr2.score_threshold <= 1                  # chosen on the validation frames
    d = detect(small.polar[0], tr2.checkpoint)
    assert d.status == 0 and d.boxes.shape == (100, 4)
    ev = evaluate(d.boxes[None], d.scores[None], d.labels[None], np.array([d.n]),
                  small.boxes[:1], small.labels[:1], small.n_boxes[:1])
    assert 0 <= ev.ap50 <= 1


def test_bad_inputs(small, tmp_path):
    tr = train(small.polar, small.boxes, small.labels, small.n_boxes,
               params={"steps": 1, "batch_size": 1, "width": 16})
    with pytest.raises(InputError, match=r"the model .* takes \(64, 64\)"):
        detect(np.zeros((32, 32)), tr.checkpoint)
    with pytest.raises(InputError, match="nope.pt.*not found"):
        detect(small.polar[0], str(tmp_path / "nope.pt"))
    bad = small.labels.copy()
    bad[0, 0] = 7
    with pytest.raises(InputError, match="unknown categories"):
        train(small.polar, small.boxes, bad, small.n_boxes, params={"steps": 1})
    outside = small.boxes.copy()
    outside[0, 0, 2] = 500
    with pytest.raises(InputError, match="outside"):
        train(small.polar, outside, small.labels, small.n_boxes, params={"steps": 1})
    with pytest.raises(InputError, match="incidence_deg"):
        from matterflow.diffraction.gixd._geometry import PolarConverter, PolarGrid, make_poni

        PolarConverter(make_poni(), float("nan"), PolarGrid())


def test_best_threshold_hand_computed():
    from matterflow.diffraction.gixd._metrics import best_threshold

    # detections by score: TP (0.9), FP (0.8), TP (0.7), FP (0.6); two GT boxes
    gt = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)]
    det = [np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30], [70, 70, 80, 80]],
                    float)]
    args = (det, [np.array([0.9, 0.8, 0.7, 0.6])], [np.ones(4, int)], gt, [np.ones(2, int)])
    best = best_threshold(*args)
    # F1 after each: 2/3, 1/2, 4/5, 2/3 -> best at 0.7 (P 2/3, R 1)
    assert best.threshold == pytest.approx(0.7) and best.f1 == pytest.approx(0.8)
    at = best_threshold(*args, fixed=0.85)
    assert at.precision == pytest.approx(1.0) and at.recall == pytest.approx(0.5)


def test_series_feature_ids_follow_a_peak():
    s = simulate(params={"n_images": 6, "mode": "series", "n_q": 64, "n_chi": 64,
                         "detector_px": 128})
    ids = [set(s.feature_id[i, :s.n_boxes[i]].tolist()) for i in range(6)]
    common = set.intersection(*ids)
    assert common and -1 not in common
    # the precursor's strain is fixed: a feature seen in every frame keeps its |q|
    f = next(iter(common))
    q = [s.q_inv_nm[i][s.feature_id[i] == f][0] for i in range(6)]
    assert np.ptp(q) < 1e-6


def test_track_links_moving_peaks_and_drops_duplicates():
    from matterflow.diffraction.gixd.tasks import track

    # two peaks drifting by 0.1 1/nm per frame, one missed in frame 2, a duplicate of the
    # first (lower score, same place) in frame 1; an arc whose centre χ jumps by 8° (its
    # extent is 30°) must stay one track
    nf, m = 5, 100
    q = np.full((nf, m), np.nan)
    chi = np.full((nf, m), np.nan)
    s = np.full((nf, m), np.nan)
    wq = np.full((nf, m), np.nan)
    wc = np.full((nf, m), np.nan)
    n = np.zeros(nf, int)
    for f in range(nf):
        rows = [(10 + 0.1 * f, 30.0, 0.9, 0.4, 10.0), (15 - 0.1 * f, 60.0 + (8 if f % 2 else 0),
                                                        0.8, 0.4, 30.0)]
        if f == 1:
            rows.append((10 + 0.1 * f + 0.02, 30.5, 0.5, 0.4, 10.0))
        if f == 2:
            rows = rows[1:]
        for k, r in enumerate(rows):
            q[f, k], chi[f, k], s[f, k], wq[f, k], wc[f, k] = r
        n[f] = len(rows)
    t = track(q, chi, s, n, wq, wc, params={"max_dq": 0.3, "max_dchi": 3.0, "min_score": 0.3})
    first = [t.track_id[f, 0] for f in (0, 1, 3, 4)]
    arc = [t.track_id[f, 1] for f in (0, 1, 3, 4)] + [t.track_id[2, 0]]
    assert len(set(first)) == 1 and len(set(arc)) == 1 and first[0] != arc[0]
    assert t.track_id[1, 2] == -1            # the duplicate is not tracked
    assert t.n_tracks == 2


def test_classical_box_of_a_gaussian_spot_is_two_sigma():
    from matterflow.diffraction.gixd._classical import classical_detect

    # one Gaussian spot, σ = 1.5 px along |q| and 4 px along χ, on a flat background
    yy, xx = np.mgrid[:64, :64] + 0.5
    img = 20 + 2000 * np.exp(-0.5 * (((xx - 30.0) / 1.5) ** 2 + ((yy - 25.0) / 4.0) ** 2))
    out = classical_detect(img)
    k = int(np.argmax(out["scores"]))
    x0, y0, x1, y1 = out["boxes"][k]
    # the ±2σ box of the labels, within 15 %
    assert (x0 + x1) / 2 == pytest.approx(30.0, abs=0.5)
    assert (y0 + y1) / 2 == pytest.approx(25.0, abs=0.5)
    assert (x1 - x0) == pytest.approx(4 * 1.5, rel=0.15)
    assert (y1 - y0) == pytest.approx(4 * 4.0, rel=0.15)


def test_track_keeps_category_and_merges_a_feature_seen_twice():
    from matterflow.diffraction.gixd.tasks import track

    # a spot (label 1, 8° wide) and a ring (label 2, 80° wide) at the same |q|: the ring's wide
    # gate must not take the spot. The spot is also found twice in every frame (a narrow box
    # and a wide box 0.15 1/nm off, lower score): one track, the better box kept
    nf, m = 6, 100
    arr = {k: np.full((nf, m), np.nan) for k in ("q", "chi", "s", "wq", "wc")}
    lab = np.zeros((nf, m), int)
    n = np.zeros(nf, int)
    for f in range(nf):
        rows = [(19.1, 67.0, 0.9, 0.3, 8.0, 1), (19.25, 67.0, 0.4, 0.6, 8.0, 1)]
        if f != 2:
            rows.append((19.15, 45.0, 0.7, 0.5, 80.0, 2))
        if f % 2:  # the spot and its duplicate swap places in the list
            rows[0], rows[1] = rows[1], rows[0]
        for k, (q, c, s, wq, wc, lb) in enumerate(rows):
            arr["q"][f, k], arr["chi"][f, k], arr["s"][f, k] = q, c, s
            arr["wq"][f, k], arr["wc"][f, k], lab[f, k] = wq, wc, lb
        n[f] = len(rows)
    t = track(arr["q"], arr["chi"], arr["s"], n, arr["wq"], arr["wc"], lab,
              params={"min_score": 0.3, "merge_iou": 0.99})
    spot = {int(t.track_id[f, k]) for f in range(nf) for k in range(n[f])
            if lab[f, k] == 1 and arr["s"][f, k] > 0.5}
    ring = {int(t.track_id[f, k]) for f in range(nf) for k in range(n[f]) if lab[f, k] == 2}
    dup = {int(t.track_id[f, k]) for f in range(nf) for k in range(n[f])
           if arr["s"][f, k] == 0.4}
    assert len(spot) == 1 and len(ring) == 1 and spot != ring
    assert dup == {-1}                      # the duplicate box is left untracked
    assert t.n_tracks == 2
    # the first version's linking: categories mixed, the duplicate kept as its own track
    old = track(arr["q"], arr["chi"], arr["s"], n, arr["wq"], arr["wc"], lab,
                params={"min_score": 0.3, "merge_iou": 0.99, "history": 1,
                        "merge_tracks": 0.0, "keep_category": False})
    assert old.n_tracks > 2


@pytest.mark.slow
def test_short_anisotropic_training_beats_the_classical_baseline():
    # the demo's setting (48 frames of 96², 300 steps of a width-16 arch-2 model): on held-out
    # frames its AP50 exceeds that of the independent classical peak finder by a clear margin
    # (measured 0.587 vs 0.281; the isotropic arch 1 reaches 0.217 here, so it fails this test)
    from matterflow.diffraction.gixd.tasks import detect_batch

    grid = {"n_q": 96, "n_chi": 96, "detector_px": 256}
    tr = simulate(params={"n_images": 48, "seed": 0, **grid})
    te = simulate(params={"n_images": 8, "seed": 1, **grid})
    res = train(tr.polar, tr.boxes, tr.labels, tr.n_boxes,
                params={"steps": 300, "batch_size": 2, "width": 16, "lr": 0.002})

    def ap50(d):
        nb = te.n_boxes
        return average_precision([x["boxes"] for x in d], [x["scores"] for x in d],
                                 [x["labels"] for x in d],
                                 [te.boxes[i, :nb[i]] for i in range(len(d))],
                                 [te.labels[i, :nb[i]] for i in range(len(d))]).ap50

    model = ap50(detect_batch(te.polar, model=np.asarray(res.checkpoint)))
    base = ap50(detect_batch(te.polar, method="classical"))
    print(f"AP50 model {model:.3f} baseline {base:.3f}")
    assert model > base + 0.1, (model, base)
