"""hrtem.match: resume from the evaluation log, parameter intervals, evaluations on workers."""

import json

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.microscopy.hrtem import matching
from matterflow.microscopy.hrtem.tasks import MatchParams, match_image, simulate

SMALL = {"method": "bo", "budget": 16, "n_init": 6, "max_cells": 6,
         "defocus_bounds": (40.0, 120.0), "cs_bounds_um": (-25.0, -5.0)}


@pytest.fixture(scope="module")
def image():
    sim = simulate(params={"defocus": 80, "cs_um": -15, "thickness_cells": 4, "seed": 3,
                           "size": 192})
    return sim.image, sim.pixel_size


def test_a_match_killed_mid_way_resumes_and_equals_an_uninterrupted_run(image, tmp_path,
                                                                        monkeypatch):
    """A failure injected at the 10th forward evaluation (in the BO stage) stops the run; the
    log then holds the 9 evaluations made; the rerun takes those 9 from the log, computes the
    rest, and its evaluations and result equal an uninterrupted run's with the same seed."""
    img, px = image
    p = MatchParams(**SMALL)
    full = match_image(img, px, p, log_path=tmp_path / "full.jsonl")[0]
    assert full.replayed == 0 and len(full.losses) == 16
    from matterflow.microscopy.hrtem.tasks import _match_figures

    vals = {k: getattr(full, k) for k in full.__dataclass_fields__}
    assert "GP posterior" in _match_figures(vals, p)

    real = matching.evaluate_point
    calls = {"n": 0}

    def failing(obj, x):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt("killed")
        return real(obj, x)

    monkeypatch.setattr(matching, "evaluate_point", failing)
    log = tmp_path / "killed.jsonl"
    with pytest.raises(KeyboardInterrupt):
        match_image(img, px, p, log_path=log)
    assert len(log.read_text().splitlines()) == 1 + 9  # header + the evaluations made
    monkeypatch.setattr(matching, "evaluate_point", real)
    # a kill during a write leaves a torn last line: it is dropped, not an error
    with open(log, "a") as f:
        f.write('{"x": [1.0, 2')
    res = match_image(img, px, p, log_path=log)[0]
    assert res.replayed == 9
    np.testing.assert_array_equal(res.losses, full.losses)
    np.testing.assert_array_equal(res.evaluated, full.evaluated)
    np.testing.assert_array_equal(res.best_params, full.best_params)
    # every evaluation is in the log, in order (the log also keeps the steps of the last
    # L-BFGS line search past the budget, which the result drops)
    rec = [json.loads(s) for s in log.read_text().splitlines()[1:]]
    assert [r["loss"] for r in rec[:16]] == list(full.losses)


def test_the_scan_search_replays_from_its_log(image, tmp_path):
    """method="scan": a rerun on the complete log takes every evaluation (scan points and
    L-BFGS steps with their gradients) from it and gives the same result."""
    img, px = image
    p = MatchParams(**{**SMALL, "method": "scan", "budget": 40})
    log = tmp_path / "scan.jsonl"
    first = match_image(img, px, p, log_path=log)[0]
    again = match_image(img, px, p, log_path=log)[0]
    assert first.replayed == 0 and again.replayed == len(first.losses) > 20
    np.testing.assert_array_equal(again.losses, first.losses)
    np.testing.assert_array_equal(again.best_params, first.best_params)


def test_a_log_of_other_settings_is_refused_unless_forced(image, tmp_path):
    img, px = image
    log = tmp_path / "m.jsonl"
    match_image(img, px, MatchParams(**{**SMALL, "budget": 8, "n_init": 4}), log_path=log)
    with pytest.raises(InputError, match=r"params\.seed"):
        match_image(img, px, MatchParams(**{**SMALL, "budget": 8, "n_init": 4, "seed": 1}),
                    log_path=log)
    with pytest.raises(InputError, match="image"):
        match_image(img + 1, px, MatchParams(**{**SMALL, "budget": 8, "n_init": 4}), log_path=log)
    res = match_image(img, px, MatchParams(**{**SMALL, "budget": 8, "n_init": 4, "seed": 1}),
                      log_path=log, force=True)[0]
    assert res.replayed == 0


def test_the_noise_estimate_is_the_poisson_variance():
    """The white-noise variance read from the image's spectrum equals the Poisson variance
    (= the mean count, about 182 at 2e4 e/Å² and 0.1 Å pixels) within 5 %."""
    from matterflow.microscopy.hrtem.uncertainty import white_noise_variance

    for seed in (0, 1):
        img = simulate(params={"thickness_cells": 6, "seed": seed, "size": 256}).image
        assert white_noise_variance(img) == pytest.approx(img.mean(), rel=0.05)


def test_intervals_hold_the_truth_and_shrink_with_dose():
    """SrTiO3 [001], truth 80 Å, −15 µm, 6 cells, 160², 20 evaluations in a 66–92 Å ×
    −21…−8 µm box, seeds 0–2: the (misfit-widened) Laplace interval holds the true defocus and
    Cs in at least 2 of the 3 seeds (measured 2), its thickness interval the true thickness in
    all (the GP interval is not asserted: it held the truth in 1 of the 3); ten times the dose shrinks the noise-only
    Laplace std by about √10 = 3.2 (Poisson statistics; measured 3.1; 2…4.5 asserted)."""
    box = {"method": "bo", "budget": 20, "n_init": 8, "max_cells": 7, "focal_spread": 30.0,
           "defocus_bounds": (66.0, 92.0),
           "cs_bounds_um": (-21.0, -8.0)}

    def holds(iv):
        return bool(iv[0, 0] <= 80 <= iv[0, 1] and iv[1, 0] <= -15 <= iv[1, 1])

    in_gp = in_lap = 0
    std = {}
    for seed in range(3):
        sim = simulate(params={"defocus": 80, "cs_um": -15, "thickness_cells": 6, "seed": seed,
                               "size": 160})
        r = match_image(sim.image, sim.pixel_size, MatchParams(**box, seed=seed))[0]
        in_gp += holds(r.gp_interval)
        in_lap += holds(r.laplace_interval)
        assert r.laplace_interval[2, 0] <= 6 <= r.laplace_interval[2, 1]
        assert np.all(r.laplace_std > 0) and 0 < r.noise_level < 0.1 and r.chi2_reduced > 0
        if seed == 0:
            std[2e4] = r.laplace_std
    assert in_lap >= 2, (in_gp, in_lap)
    sim = simulate(params={"defocus": 80, "cs_um": -15, "thickness_cells": 6, "seed": 0,
                           "size": 160, "dose": 2e5})
    r = match_image(sim.image, sim.pixel_size, MatchParams(**box, seed=0))[0]
    ratio = std[2e4] / r.laplace_std
    assert np.all((ratio > 2) & (ratio < 4.5)), ratio


def test_independent_evaluations_give_the_same_result_on_two_threads(image):
    """The Sobol start, the valley scan and the random search go through
    core.execute.map_calls: Dask's threaded scheduler (2 threads) gives the same numbers."""
    img, px = image
    for method in ("bo", "random"):
        p = MatchParams(**{**SMALL, "method": method, "budget": 12})
        one = match_image(img, px, p)[0]
        two = match_image(img, px, p, scheduler="threads")[0]
        np.testing.assert_array_equal(one.losses, two.losses)
        np.testing.assert_array_equal(one.evaluated, two.evaluated)


@pytest.mark.slow
def test_independent_evaluations_give_the_same_result_on_two_workers(image):
    """The random search's points and the identification's candidates go through
    core.execute.map_calls: a 2-process LocalCluster gives the same numbers as one process."""
    from matterflow.core.execute import dask_client
    from matterflow.microscopy.hrtem.tasks import IdentifyParams, identify_image

    img, px = image
    p = MatchParams(**{**SMALL, "method": "random", "budget": 10})
    ip = IdentifyParams(candidates=("SrTiO3", "BaTiO3"), budget=8, n_init=4, max_cells=5)
    one = match_image(img, px, p)[0]
    ident_one = identify_image(img, px, ip)
    with dask_client(workers=2, processes=True) as client:
        two = match_image(img, px, p, scheduler=client)[0]
        ident_two = identify_image(img, px, ip, scheduler=client)
    np.testing.assert_array_equal(one.losses, two.losses)
    np.testing.assert_array_equal(one.evaluated, two.evaluated)
    np.testing.assert_array_equal(ident_one.losses, ident_two.losses)
    assert list(ident_one.candidates) == list(ident_two.candidates)


@pytest.mark.slow
def test_cli_match_killed_by_sigkill_resumes(image, tmp_path):
    """`matterflow hrtem match` killed (SIGKILL) in its BO stage (after the 16 Sobol points and
    at least 2 BO steps, each of which waits for a GP fit); the rerun
    takes them from OUT.evals.jsonl and ends with the evaluations of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import h5py

    img, px = image
    np.save(tmp_path / "img.npy", img)
    args = [sys.executable, "-m", "matterflow.cli", "hrtem", "match", str(tmp_path / "img.npy"),
            "--pixel-size", str(px), "--budget", "40", "--max-cells", "6"]
    log = tmp_path / "m.evals.jsonl"
    proc = subprocess.Popen([*args, "-o", str(tmp_path / "m.h5")], env={**os.environ},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 120:
        if log.exists() and len(log.read_text().splitlines()) >= 1 + 18:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_stored = len(log.read_text().splitlines()) - 1
    assert 18 <= n_stored < 40 and not (tmp_path / "m.h5").exists()
    r = subprocess.run([*args, "-o", str(tmp_path / "m.h5")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"({n_stored} from the evaluation log)" in " ".join(r.stdout.split())
    r = subprocess.run([*args, "-o", str(tmp_path / "ref.h5")], capture_output=True, text=True)
    assert r.returncode == 0 and "(0 from the evaluation log)" in " ".join(r.stdout.split())
    with h5py.File(tmp_path / "m.h5") as a, h5py.File(tmp_path / "ref.h5") as b:
        for name in ("losses", "evaluated", "best_params", "laplace_interval"):
            np.testing.assert_array_equal(_find(a, name), _find(b, name))


def _find(h5, name):
    found = []
    h5.visititems(lambda k, v: found.append(v[()]) if k.split("/")[-1] == name else None)
    return found[0]
