"""Driver run INSIDE the pydidas virtual environment by ``xrd_vs_pydidas.py``.

It only *uses* pydidas (GPL-3.0) through its public API, as a user script would:
it builds a Scan, a DiffractionExperiment (from the PONI file) and a
ProcessingTree, then runs pydidas's headless ``ExecuteWorkflowRunner`` (the class
behind the ``run-pydidas-workflow`` console script), which processes the frames
with ``mp_n_workers`` worker processes and writes the results to HDF5.

Usage (python of the pydidas venv)::

    python xrd_pydidas_driver.py CONFIG.json

CONFIG.json keys: ``folder`` (holds the frame files), ``pattern`` (file name with
``#`` for the file index), ``first_index``, ``n_frames``, ``images_per_file``,
``dataset``, ``poni``, ``centers`` (deg 2θ), ``window`` (deg, half-width),
``npt``, ``workers``, ``out`` (output folder), ``result`` (``.npz`` written for the
comparison: mean pattern, radial axis, fitted positions).

Set ``XDG_CONFIG_HOME`` to a scratch folder before starting it: pydidas keeps its
settings (``global/mp_n_workers``) in Qt's per-user settings file.

Prints one JSON line with the timings measured inside the process.
"""

from __future__ import annotations

import json
import sys
import time

T_START = time.perf_counter()


def main(config_path: str) -> None:
    cfg = json.loads(open(config_path).read())

    import numpy as np
    from pydidas.apps import ExecuteWorkflowRunner
    from pydidas.contexts.diff_exp import DiffractionExperiment
    from pydidas.contexts.scan import Scan
    from pydidas.core import PydidasQsettings
    from pydidas.plugins import PluginCollection
    from pydidas.workflow import ProcessingTree, WorkflowResults

    t_import = time.perf_counter() - T_START

    settings = PydidasQsettings()
    settings.set_value("global/mp_n_workers", int(cfg["workers"]))
    # one result set = 1000 bins + 3 fits: the default buffers are ample

    scan = Scan()
    scan.set_param_value("scan_dim", 1)
    scan.set_param_value("scan_title", "matterflow benchmark")
    scan.set_param_value("scan_base_directory", cfg["folder"])
    scan.set_param_value("scan_name_pattern", cfg["pattern"])
    scan.set_param_value("pattern_number_offset", int(cfg["first_index"]))
    scan.set_param_value("pattern_number_delta", 1)
    scan.set_param_value("scan_dim0_n_points", int(cfg["n_frames"]))
    scan.set_param_value("scan_dim0_label", "frame")
    scan.set_param_value("scan_dim0_delta", 1)
    scan.set_param_value("scan_dim0_offset", 0)

    exp = DiffractionExperiment()
    exp.import_from_file(cfg["poni"])

    plugins = PluginCollection()
    tree = ProcessingTree()
    loader = plugins.get_plugin_by_name("Hdf5fileSeriesLoader")()
    loader.set_param_value("hdf5_key", cfg["dataset"])
    loader.set_param_value("hdf5_slicing_axis", 0)
    loader.set_param_value("images_per_file", int(cfg["images_per_file"]))
    tree.create_and_add_node(loader)

    integ = plugins.get_plugin_by_name("PyFAIazimuthalIntegration")()
    integ.set_param_value("rad_npoint", int(cfg["npt"]))
    integ.set_param_value("rad_unit", "2theta / deg")
    integ.set_param_value("int_method", "CSR")  # ("bbox", "csr", "cython"), as matterflow
    integ.set_param_value("polarization_factor", None)  # matterflow's default: no correction
    # off on both sides: pydidas hands its boolean to pyFAI as correctSolidAngle=1, which
    # pyFAI >= 2025 reads as a first-order (cos) correction, not the full one (True = 3)
    integ.set_param_value("correct_solid_angle", False)
    integ.set_param_value("keep_results", True)  # keep the patterns for the comparison
    integ_id = tree.create_and_add_node(integ, parent=0)

    fit_ids = []
    for c in cfg["centers"]:
        fit = plugins.get_plugin_by_name("FitSinglePeak")()
        fit.set_param_value("fit_func", "Voigt")  # pydidas has no pseudo-Voigt
        fit.set_param_value("fit_bg_order", 1)
        fit.set_param_value("fit_lower_limit", c - cfg["window"])
        fit.set_param_value("fit_upper_limit", c + cfg["window"])
        fit.set_param_value("fit_output", "position; area; FWHM")
        fit.set_param_value("fit_sigma_threshold", 10.0)  # keep every converged fit
        fit_ids.append(tree.create_and_add_node(fit, parent=integ_id))

    t_setup = time.perf_counter() - T_START
    runner = ExecuteWorkflowRunner(workflow=tree, scan=scan, diffraction_exp=exp,
                                   output_dir=cfg["out"], overwrite=True)
    runner.check_all_args_okay()
    runner.update_contexts_from_stored_args()
    t0 = time.perf_counter()
    runner.execute_workflow_in_apprunner()
    t_run = time.perf_counter() - t0

    res = WorkflowResults()
    patterns = np.asarray(res.get_results(integ_id))
    radial = np.asarray(res.get_result_ranges(integ_id)[1])
    pos = np.stack([np.asarray(res.get_results(i)).reshape(int(cfg["n_frames"]), -1)[:, 0] for i in fit_ids], axis=1)
    np.savez(cfg["result"], mean_pattern=np.nanmean(patterns, axis=0), radial=radial,
             positions=pos, n_finite_patterns=int(np.isfinite(patterns).all(axis=1).sum()))
    from importlib import metadata

    import pyFAI
    print(json.dumps({"import_s": round(t_import, 3), "setup_s": round(t_setup, 3),
                      "workflow_run_s": round(t_run, 3),
                      "total_in_process_s": round(time.perf_counter() - T_START, 3),
                      "mp_n_workers": settings.value("global/mp_n_workers", int),
                      "pydidas_version": metadata.version("pydidas"),
                      "pyfai_version": pyFAI.version}))


if __name__ == "__main__":
    main(sys.argv[1])
