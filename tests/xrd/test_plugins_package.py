"""`diffraction/xrd/plugins` is a package by kind of plugin; its old names still import."""

from importlib.metadata import entry_points

import matterflow.diffraction.xrd.plugins as plugins

# every public name of the single-module plugins.py before the split
OLD_NAMES = ['BUILTIN', 'Background', 'BackgroundParams', 'ChiProfile', 'ChiProfileParams',
             'DarkFlat', 'DarkFlatParams', 'ENTRY_POINT_GROUP', 'FitPeaks', 'FitPeaksParams',
             'Frame', 'Integrate1D', 'Integrate2D', 'Integrate2DParams', 'IntegrateParams', 'Mask',
             'MaskParams', 'PYFAI_LOCK', 'Plugin', 'RadialUnit', 'STAGES', 'Sector',
             'SectorParams', 'SubtractImage', 'SubtractImageParams', 'chain_spec', 'get_plugin',
             'integrate_kwargs', 'integrate_pattern', 'integration_options', 'list_plugins',
             'radial_units', 'register_plugin', 'snip', 'uses_fast_kernel', 'validate_chain']


def test_old_public_names_import_from_the_package():
    missing = [n for n in OLD_NAMES if not hasattr(plugins, n)]
    assert not missing
    assert set(OLD_NAMES) <= set(plugins.__all__)


def test_each_stage_lives_in_its_own_module():
    for name, cls in plugins.BUILTIN.items():
        module = cls.__module__.rsplit(".", 1)[1]
        assert module == cls.stage, f"{name} ({cls.stage}) is defined in {cls.__module__}"


def test_entry_point_plugin_still_found():
    eps = {ep.name: ep for ep in entry_points(group=plugins.ENTRY_POINT_GROUP)}
    assert "peak_ratio" in eps
    cls = eps["peak_ratio"].load()
    assert issubclass(cls, plugins.Plugin) and plugins.get_plugin("peak_ratio") is cls
