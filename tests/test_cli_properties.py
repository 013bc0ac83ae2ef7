"""Property-based tests: arbitrary flags and config values never end in an uncaught exception.

The job runners are replaced by a sentinel, so a command that passes validation stops before
loading a model; every other outcome must be a WorkbenchError (one `error:` line) or an
argparse usage error (exit 2).
"""

import argparse
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.cli import build_parser, run
from workbench.errors import WorkbenchError


class Reached(Exception):
    """The job runner was called: validation passed."""


def _stop(*args, **kwargs):
    raise Reached


@pytest.fixture(scope="module")
def patched():
    import workbench.jobs.audit
    import workbench.jobs.directions
    import workbench.jobs.safesteer

    mp = pytest.MonkeyPatch()
    mp.setattr(workbench.jobs.audit, "run_audit", _stop)
    mp.setattr(workbench.jobs.directions, "run_directions", _stop)
    mp.setattr(workbench.jobs.safesteer, "run_safesteer", _stop)
    yield
    mp.undo()


def _flags(command: str) -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [opt for a in sub.choices[command]._actions for opt in a.option_strings
            if opt.startswith("--") and opt not in ("--help", "--config")]


values = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.sampled_from(["0", "-1", "nan", "inf", "-inf", "1e309", "", ",", "1,,2", "-1,0,1",
                     "embedded", "tiny-random", "direct", "sycophancy", "privacy", "a/b",
                     "./nope", "/", ".", "auto", "cpu", "cuda:9", "substring", "llm:", "x=y"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=12),
)


def _argv(command: str, draw):
    flags = _flags(command)
    chosen = draw(st.lists(st.sampled_from(flags), max_size=5, unique=True))
    argv = [command, "--preset", "smoke"] if command != "directions" else [command]
    for flag in chosen:
        argv += [flag] if flag in ("--quiet", "--no-png") else [flag, draw(values)]
    return argv


def _outcome(argv, capsys) -> None:
    capsys.readouterr()
    try:
        run(argv)
    except Reached:
        return
    except WorkbenchError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    except SystemExit as exc:
        assert exc.code == 2
        err = [line for line in capsys.readouterr().err.strip().splitlines()
               if not line.startswith(("audit: ", "warning: "))]
        assert len(err) == 1 and err[0].startswith("error: "), err
        return


@pytest.mark.parametrize("command", ["audit", "directions", "safesteer"])
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_arbitrary_flags_never_crash(command, data, patched, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _outcome(_argv(command, data.draw), capsys)
    assert not (tmp_path / "runs").exists()


anything = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True),
    st.text(max_size=8).filter(lambda t: "\x00" not in t),
    st.lists(st.one_of(st.integers(-3, 40), st.floats(-5, 5), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
)


def _builders():
    from workbench.jobs import config, safesteer
    from workbench.jobs.directions import DirectionsConfig
    from workbench.validation import validate

    def directions(**kw):
        from dataclasses import replace

        from workbench.validation import check_types

        check_types(DirectionsConfig, kw)
        return validate(replace(DirectionsConfig(model="tiny-random"), **kw), set(kw))

    return {"audit": (config.AuditConfig, lambda **kw: config.build_config("smoke", **kw)),
            "safesteer": (safesteer.SafeSteerConfig,
                          lambda **kw: safesteer.build_config("smoke", **kw)),
            "directions": (DirectionsConfig, directions)}


@pytest.mark.parametrize("job", ["audit", "safesteer", "directions"])
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_config_builders_accept_or_explain(job, data, tmp_path, monkeypatch):
    from dataclasses import fields

    monkeypatch.chdir(tmp_path)
    cls, build = _builders()[job]
    names = [f.name for f in fields(cls) if f.name not in ("preset",)]
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    kwargs = {n: data.draw(anything) for n in chosen}
    kwargs = {k: v for k, v in kwargs.items() if v is not None} or {"seed": 0}
    try:
        build(**kwargs)
    except WorkbenchError as exc:
        assert "\n" not in str(exc)


def _walk(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _walk(sub)


def test_every_flag_has_help():
    for parser in _walk(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help.strip(), (parser.prog, action.option_strings)
            assert "``" not in action.help, (parser.prog, action.help)


def test_top_level_help_lists_every_command_and_the_bare_default():
    parser = build_parser()
    text = parser.format_help()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in sub.choices:
        assert f"\n  {name} " in text, name
        assert sub.choices[name].epilog, f"{name} has no examples"
    assert "A bare `workbench` runs `workbench audit` with the quick preset" in text
    assert "about 10 minutes" in text and "``" not in text  # as measured, docs/benchmarks.md


def test_cli_default_model_matches_the_loader():
    from workbench.cli import DEFAULT_MODEL
    from workbench.model import DEFAULT_MODEL as LOADER_DEFAULT

    assert DEFAULT_MODEL == LOADER_DEFAULT


def test_help_imports_no_torch():
    code = ("import sys; from workbench.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "main(['audit', '--help'])\n"
            "heavy = [m for m in ('torch', 'transformers', 'transformer_lens', 'numpy', 'plotly')"
            " if m in sys.modules]\nprint('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout[-500:]


def test_list_command(capsys):
    from workbench.cli import main

    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for word in ("behaviours:", "sycophancy", "templates:", "prefix_injection", "presets:",
                 "smoke", "judges:", "llm:SPEC", "models:", "tiny-random"):
        assert word in text, word


@pytest.mark.parametrize("junk", ["\x1e", "\u2028", "a\rb", "\x1b[31m"])
def test_control_characters_in_an_argument_stay_one_error_line(junk, capsys):
    """A stray separator or escape in an unknown argument is printed escaped, on one line."""
    with pytest.raises(SystemExit) as exc:
        run(["audit", "--preset", "smoke", junk])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: unrecognized arguments: ")
    assert err.isprintable() or err[:-1].isprintable()
