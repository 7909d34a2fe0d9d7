"""Checks every registered task alike (core and all domains), like scikit-learn's common tests."""

import dataclasses
import typing

import pytest
from pydantic import ValidationError

from matterflow.core.errors import InputError
from matterflow.core.registry import list_tasks, unavailable_domains

TASKS = list_tasks()


def test_all_domains_import():
    assert unavailable_domains() == {}, "a domain's tasks failed to import"


@pytest.mark.parametrize("name", list(TASKS))
def test_task_has_doc_and_domain_prefix(name):
    t = TASKS[name]
    assert t.doc, f"{name} needs a one-line docstring"
    assert "." in name


@pytest.mark.parametrize("name", list(TASKS))
def test_params_are_frozen_and_reject_unknown_fields(name):
    t = TASKS[name]
    assert t.params.model_config.get("frozen") and t.params.model_config.get("extra") == "forbid"
    with pytest.raises(InputError, match="no_such_parameter: unknown parameter"):
        t.make_params({"no_such_parameter": 1})


@pytest.mark.parametrize("name", list(TASKS))
def test_defaults_are_valid_or_required(name):
    t = TASKS[name]
    required = [n for n, f in t.params.model_fields.items() if f.is_required()]
    if not required:
        t.make_params(None)


@pytest.mark.parametrize("name", list(TASKS))
def test_bad_bounded_value_names_the_field(name):
    t = TASKS[name]
    for fname, f in t.params.model_fields.items():
        for meta in f.metadata:
            low = getattr(meta, "ge", None)
            if low is None:
                low = getattr(meta, "gt", None)
            if isinstance(low, (int, float)) and not isinstance(low, bool):
                with pytest.raises(InputError, match=rf"\.{fname}: "):
                    t.make_params({fname: low - 1})
                return


@pytest.mark.parametrize("name", list(TASKS))
def test_result_fields_declare_units(name):
    t = TASKS[name]
    ret = typing.get_type_hints(t.func).get("return")
    assert ret is not None and dataclasses.is_dataclass(ret), f"{name} must return a dataclass"
    missing = [f.name for f in dataclasses.fields(ret) if "units" not in f.metadata]
    assert not missing, f"{name}: result fields without units: {missing}"


def test_same_seed_same_result():
    from matterflow.core.quickstart import random_walks

    a = random_walks(params={"n_walkers": 3, "n_steps": 10, "seed": 5}).positions_nm
    b = random_walks(params={"n_walkers": 3, "n_steps": 10, "seed": 5}).positions_nm
    c = random_walks(params={"n_walkers": 3, "n_steps": 10, "seed": 6}).positions_nm
    assert (a == b).all() and not (a == c).all()


def test_validation_error_is_not_leaked():
    from matterflow.core.quickstart import random_walks

    with pytest.raises(InputError) as info:
        random_walks(params={"n_walkers": 0})
    assert not isinstance(info.value, ValidationError)
    assert "n_walkers" in str(info.value)
