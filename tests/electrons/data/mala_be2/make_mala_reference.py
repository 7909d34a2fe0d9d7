"""Make ``mala_prediction.npy``: MALA 1.4.0's own prediction with ``Be_model.zip``.

Run with the Python of a venv that holds MALA (``pip install materials-learning-algorithms==1.4.0``),
never with matterflow's::

    /work/refvenvs/mala/bin/python make_mala_reference.py DESCRIPTORS.npy OUT_DIR [STRIDE]

DESCRIPTORS.npy is MALA's ``Be_snapshot1.in.npy`` (18x18x27x94, the first 3 features are the grid
coordinates) or an array of 91 features per point (e.g. ``descriptors_subset.npy``).
Every STRIDE-th grid point (C order) is kept; written: ``descriptors_subset.npy``
(float32, what MALA's network sees before scaling) and ``mala_prediction.npy`` (the LDOS MALA's
Predictor returns for them: input scaler, network, output scaler, negative values set to 0).
"""

import os
import shutil
import sys
import tempfile

import mala
import numpy as np
import torch

src, out = sys.argv[1], sys.argv[2]
stride = int(sys.argv[3]) if len(sys.argv) > 3 else 1
here = os.path.dirname(os.path.abspath(__file__))
work = tempfile.mkdtemp()  # MALA 1.4 rewrites the archive it loads (adds JSON scalers): use a copy
shutil.copy(os.path.join(here, "Be_model.zip"), work)
params, network, data_handler, predictor = mala.Predictor.load_run("Be_model", path=work)
raw = np.load(src)
x = (raw[..., 3:] if raw.shape[-1] == 94 else raw).reshape(-1, 91)[::stride].astype(np.float32)
t = torch.from_numpy(x.copy()).float()
data_handler.input_data_scaler.transform(t)
data_handler.grid_size = len(x)
predictor.parameters.mini_batch_size = 1  # MALA would pick 1 anyway for 547 (a prime) points
pred = predictor._forward_snap_descriptors(t, local_data_size=len(x))
os.makedirs(out, exist_ok=True)
np.save(os.path.join(out, "descriptors_subset.npy"), x)
np.save(os.path.join(out, "mala_prediction.npy"), pred.astype(np.float64))
print(x.shape, pred.shape, float(pred.mean()), mala.__version__)
