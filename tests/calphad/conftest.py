import pytest

TOY_TDB = """
ELEMENT CU BLANK 0 0 0 !
ELEMENT NI BLANK 0 0 0 !
ELEMENT VA BLANK 0 0 0 !
FUNCTION WREG 298.15 12000; 6000 N !
PHASE LIQUID % 1 1 !
CONSTITUENT LIQUID : CU,NI : !
PARAMETER G(LIQUID,CU;0) 298.15 0; 6000 N !
PARAMETER G(LIQUID,NI;0) 298.15 0; 6000 N !
PARAMETER G(LIQUID,CU,NI;0) 298.15 WREG#; 6000 N !
"""


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
