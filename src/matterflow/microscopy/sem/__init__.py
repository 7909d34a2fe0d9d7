"""Fast in-situ SEM: super-resolution of quick low-resolution scans and planned full-resolution rescans.

Modules: :mod:`.synthetic` (microstructures and SE image formation),
:mod:`.models` (single-image and reference-based ×4 networks, baselines),
:mod:`.planning` (points of interest, rescan tiles, stage path, acquisition time),
:mod:`.io` (micrograph input with pixel size, through :mod:`matterflow.microscopy.imageio`),
:mod:`.tasks` and :mod:`.cli`.
"""
