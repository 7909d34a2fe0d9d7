"""``matterflow view``: local web pages for runs.

``matterflow view [PATHS...]`` serves a tree of run folders (or given results
files) on http://127.0.0.1 with FastAPI and uvicorn: a runs table with each
run's headline figure and number, a run page (provenance, steps, figures,
interactive plots), an HDF5 tree browser, a comparison of runs and a live view
of a running workflow (server-sent events from the executor's step cache).
HDF5 content is also served as JSON in the shape of h5grove's endpoints
(``/meta/``, ``/attr/``, ``/data/`` with slicing). Everything is read-only,
limited to the served roots, and works offline (plotly's JS comes from the
installed ``plotly`` package). See ``docs/view.md``.
"""

from matterflow.view.app import ViewServer, make_app, serve

__all__ = ["ViewServer", "make_app", "serve"]
