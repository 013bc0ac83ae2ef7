"""The run-directory package: keys, the boolean parser, typed tables, and the old paths."""

import importlib
import math
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from workbench import WorkbenchError
from workbench import report
from workbench.rundir import bool_column, condition_key, generation_key, parse_bool, read_rows


def test_condition_key_matches_the_audits_condition():
    from workbench.rundir import Condition

    c = Condition("sycophancy", "caa", 4, -0.5, True)
    row = {"behaviour": "sycophancy", "method": "caa", "layer": 4, "coefficient": -0.5,
           "mitigated": True, "extra": 1}
    assert condition_key(row) == condition_key(tuple(row[k] for k in list(row)[:5])) == c.key
    assert c.key == "sycophancy|caa|4|-0.5|True"
    assert condition_key(Condition().__dict__) == "none|none|None|0.0|False"
    assert generation_key(c.key, "direct", "attack-1", "harmful") == f"{c.key}|direct|attack-1|harmful"


@pytest.mark.parametrize("value, expected", [
    (True, True), (np.bool_(False), False), ("True", True), (" yes ", True), ("1", True),
    ("False", False), ("0", False), ("", False), ("no", False), (None, False),
    (float("nan"), False), (1, True), (0.0, False)])
def test_one_boolean_parser(value, expected):
    assert parse_bool(value) is expected


def test_unknown_booleans_are_an_error_or_the_given_default():
    with pytest.raises(WorkbenchError, match="as a boolean"):
        parse_bool("maybe")
    assert parse_bool("random", unknown=True) is True
    assert parse_bool("random", unknown=False) is False
    col = bool_column(pd.Series(["True", "", None, "refusal"]), unknown=True)
    assert col.tolist() == [True, False, False, True]


def test_typed_rows_read_back_what_the_analysis_wrote(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("behaviour,control,layer,n,coefficient,mitigated,p_value\n"
                    "sycophancy,False,3,10,-0.5,True,\n"
                    "none,False,,10,0.0,False,0.25\n")
    rows = read_rows(path)
    assert rows[0]["control"] is False and rows[0]["mitigated"] is True
    assert rows[0]["layer"] == 3 and rows[0]["n"] == 10 and rows[0]["coefficient"] == -0.5
    assert math.isnan(rows[0]["p_value"]) and rows[1]["layer"] is None
    assert rows[1]["behaviour"] == "none" and rows[1]["p_value"] == 0.25


def test_number_formats_keep_each_writers_form():
    assert report.pct(0.4) == "40.0%" and report.pct(-0.0001) == "0.0%"
    assert report.pct_whole(0.4) == "40%" and report.pct_whole(None) == "n/a"
    assert report.pct(float("nan")) == "—"
    assert report.pp(-0.0001) == "+0.0" and report.pp(0.123) == "+12.3"
    assert report.p_value(0.0004) == "0.0004" and report.p_value(0.01234) == "0.0123"
    assert report.p_value_fixed(0.0004) == "4.0e-04" and report.p_value_fixed(0.5) == "0.500"
    assert report.num(-0.0, ".2f") == "0.00" and report.num(-0.0, ".2f", signed_zero=True) == "-0.00"
    assert report.num(None, missing="n/a") == "n/a"
    assert report.csv_cell(float("nan")) == "" and report.csv_cell(1 / 3) == "0.333333"
    assert report.cell(None, ".2f") == "" and report.cell("specific", "s") == "specific"


@pytest.mark.parametrize("module, name", [
    ("workbench.jobs.analysis", "delta_rows"), ("workbench.jobs.analysis", "report_markdown"),
    ("workbench.jobs.compare", "fit_rows"), ("workbench.jobs.compare", "load_audit_run"),
    ("workbench.jobs.reopen", "AuditRun"), ("workbench.jobs.reopen", "signed_scales"),
    ("workbench.jobs.audit", "method_directions"),
    ("workbench.jobs.reanalyse", "condition_key")])
def test_moved_names_still_work_and_warn(module, name):
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=name):
        assert getattr(mod, name) is not None


@pytest.mark.parametrize("module, name", [("workbench.jobs.store", "GenerationStore"),
                                          ("workbench.jobs.checkpoint", "DirectionCheckpoint")])
def test_moved_modules_still_import_and_warn(module, name):
    sys.modules.pop(module, None)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        mod = importlib.import_module(module)
    import workbench.rundir as rundir

    assert getattr(mod, name) is getattr(rundir, name)


def test_the_package_imports_no_deprecated_path():
    import subprocess

    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning); "
            "import workbench.cli, workbench.jobs.audit, workbench.jobs.reanalyse, "
            "workbench.jobs.compare, workbench.jobs.reopen, workbench.jobs.safesteer, "
            "workbench.figures, workbench.rundir, workbench.analysis.report")
    with warnings.catch_warnings():
        subprocess.run([sys.executable, "-c", code], check=True)
