import pytest
from calphad_toy import TOY_TDB


@pytest.fixture(scope="session")
def toy_model():
    """A symmetric regular solution G = RT(x ln x + (1-x) ln(1-x)) + W x (1-x), W free."""
    from pycalphad import Database

    from matterflow.calphad.engine import BinaryModel

    return BinaryModel(Database(TOY_TDB), parameters=["WREG"], n_grid=400)


@pytest.fixture(scope="session")
def cumg_model():
    from matterflow.calphad.datasets import cumg_truth_tdb
    from matterflow.calphad.engine import BinaryModel

    return BinaryModel(cumg_truth_tdb(), n_grid=200)
