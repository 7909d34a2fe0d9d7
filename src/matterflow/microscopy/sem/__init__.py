"""Fast in-situ SEM: super-resolution of quick low-resolution scans and planned full-resolution rescans.

Modules: :mod:`.synthetic` (microstructures and SE image formation),
:mod:`.models` (single-image and reference-based ×4 networks, baselines),
:mod:`.planning` (points of interest, rescan tiles, stage path, acquisition time),
:mod:`.io` (TIFF/PNG/NumPy input with pixel size), :mod:`.tasks` and :mod:`.cli`.
"""
