"""Generation on a local 2-worker Ray cluster equals the single-process run, byte for byte,
also when a worker dies mid-run and when the driver stops and a re-run resumes.

Every Ray run starts from a run directory holding only the single-process run's directions
(``directions.safetensors`` and ``run.json``): the driver computes those in-process whatever
runs generation, so the Ray runs repeat only the part ``--ray`` changes and stay short.
"""

import json
import shutil

import pytest

from workbench.cli import main
from workbench.jobs.audit import run_audit
from workbench.jobs.config import build_config

ray = pytest.importorskip("ray", reason='the distributed extra: pip install -e ".[distributed]"')

SETTINGS = {"progress": False, "png": False, "figures": False}


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance (2 CPUs: one per worker) shared by this module's tests."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The single-process smoke audit (several items per prompt group: generation_batch=7)."""
    out = tmp_path_factory.mktemp("ray") / "single"
    run_audit(build_config("smoke", out=str(out), generation_batch=7, **SETTINGS))
    return out


def _seed(single, out):
    out.mkdir()
    for name in ("directions.safetensors", "run.json"):
        shutil.copy(single / name, out / name)
    return out


def _generations(out):
    return {r["key"]: r for r in map(json.loads, open(out / "generations.jsonl"))}


def _assert_same(a, b):
    assert (a / "asr.csv").read_bytes() == (b / "asr.csv").read_bytes()
    ga, gb = _generations(a), _generations(b)
    assert ga.keys() == gb.keys() and len(ga) > 100
    assert all(ga[k] == gb[k] for k in ga)  # response, labels, every field


def _executor():
    from workbench.distributed import RayExecutor

    return RayExecutor("tiny-random", workers=2)


def test_cli_ray_run_equals_the_single_process_run(cluster, single, tmp_path, capsys):
    out = _seed(single, tmp_path / "ray")
    # the CLI's --ray joins the Ray instance already running in this process
    assert main(["audit", "--preset", "smoke", "--out", str(out), "--ray", "--ray-workers", "2",
                 "--quiet"]) == 0
    _assert_same(single, out)


def test_worker_killed_mid_run(cluster, single, tmp_path):
    out = _seed(single, tmp_path / "ray")
    with _executor() as ex:

        def killing(items):
            assert len(items) > 6
            for n, result in enumerate(ex(items)):
                if n in (1, 3):  # the actor that was just given an item (it runs for ms)
                    busy = list(ex.running.values())[-1][1]
                    # n == 1: gone for good, the driver gives its item to the other actor;
                    # n == 3: restarted by Ray, which re-runs its item on it once it is back
                    ray.kill(busy, no_restart=n == 1)
                yield result

        run_audit(build_config("smoke", out=str(out), generation_batch=7, **SETTINGS),
                  executor=killing)
        assert ex.resubmitted == 1 and len(ex.actors) == 1
    _assert_same(single, out)


def test_driver_stopped_mid_run_resumes(cluster, single, tmp_path):
    out = _seed(single, tmp_path / "ray")
    cfg = build_config("smoke", out=str(out), generation_batch=7, **SETTINGS)
    with _executor() as ex:

        def stopping(items):
            for n, result in enumerate(ex(items)):
                if n == 4:
                    raise KeyboardInterrupt
                yield result

        with pytest.raises(KeyboardInterrupt):
            run_audit(cfg, executor=stopping)
        done = len(_generations(out))
        assert 0 < done < len(_generations(single))
        run_audit(cfg, executor=ex)
    _assert_same(single, out)


def test_cli_ray_safesteer_equals_the_single_process_run(cluster, tmp_path):
    from workbench.jobs.safesteer import build_config as safesteer_config
    from workbench.jobs.safesteer import run_safesteer

    single, out = tmp_path / "single", tmp_path / "ray"
    run_safesteer(safesteer_config("smoke", out=str(single), **SETTINGS))
    assert main(["safesteer", "--preset", "smoke", "--out", str(out), "--ray",
                 "--ray-workers", "2", "--quiet"]) == 0
    for name in ("metrics.csv", "neurons.csv"):
        assert (single / name).read_bytes() == (out / name).read_bytes()
    a, b = _generations(single), _generations(out)
    assert a.keys() == b.keys() and len(a) > 50 and all(a[k] == b[k] for k in a)


def test_missing_ray_is_one_clear_error(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    assert main(["audit", "--preset", "smoke", "--ray", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --ray needs the ray package") and ".[distributed]" in err
