"""matterflow.diffraction.gixd: GIXD simulation and Bragg-feature detection (Faster R-CNN).

See ``docs/gixd.md``. Python API: the tasks of :mod:`matterflow.diffraction.gixd.tasks`
(``simulate``, ``train``, ``detect``, ``evaluate``, ``track``).
"""
