"""Running generation work items on Ray actors, each holding one model replica.

:class:`RayExecutor` is an executor in the sense of :mod:`workbench.evaluation.work`: called
with the items a job planned, it yields ``(item, token ids)`` as each finishes, in whatever
order they finish. The job's driver alone judges the answers and writes
``generations.jsonl``, so resume, the config check and the tables are the same as in a
single-process run.

- One actor per replica: one GPU per actor where the cluster has GPUs, or several with
  ``gpus_per_worker > 1``, when the model loads across them with ``device_map="auto"``
  (untested on multi-GPU machines); one CPU per actor otherwise.
- An actor that dies (a lost node, an out-of-memory kill) is restarted by Ray, which runs its
  unfinished items again on it once it is back (up to ``max_restarts`` times). An actor that
  is gone for good (restarts used up, ``ray.kill``) leaves the pool and the driver submits its
  unfinished items to the others. Nothing is lost and nothing is written twice.
- If the driver stops early, items still running are cancelled; what was written stays, and a
  re-run resumes from it.

Ray is an optional dependency (``pip install -e ".[distributed]"``), imported only here and
only when used.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import suppress
from typing import Self

from workbench.errors import WorkbenchError
from workbench.evaluation.work import GenerationItem, run_item

INSTALL_HINT = 'pip install -e ".[distributed]" (or pip install "ray>=2.9")'


def import_ray():
    """The ``ray`` module, or one clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise WorkbenchError(f"--ray needs the ray package, which is not installed; install "
                             f"the distributed extra: {INSTALL_HINT}") from None
    return ray


class Replica:
    """The state of one Ray actor: a model replica that runs work items."""

    def __init__(self, spec: str, device: str | None, trust_remote_code: bool,
                 device_map: str | None, dtype: str = "float32"):
        from workbench.model import load_model

        self.model = load_model(spec, device=device, dtype=dtype,
                                trust_remote_code=trust_remote_code, device_map=device_map)

    def run(self, item: GenerationItem) -> list[list[list[int]]]:
        return run_item(self.model, item)


class RayExecutor:
    """Work items on a pool of Ray actors, each with its own replica of ``model``.

    ``address``: ``None`` starts a local Ray instance; ``"auto"`` or ``"ray://host:10001"``
    connects to a running cluster. If Ray is already initialised in this process (a notebook,
    a test), that instance is used and left running. ``workers``: number of replicas (default:
    the cluster's GPUs divided by ``gpus_per_worker``, else 2 or the CPU count if smaller).
    ``gpus_per_worker`` defaults to 1 where the cluster has GPUs, else 0 (CPU replicas).
    ``dtype`` is the resolved dtype of the run (every replica computes in it, never ``auto``,
    so a GPU replica of a CPU-started run matches the driver's record). Use as a context manager, or call :meth:`close`, to release the actors.
    """

    def __init__(self, model: str, *, trust_remote_code: bool = False, dtype: str = "float32",
                 address: str | None = None, workers: int | None = None,
                 gpus_per_worker: int | None = None, max_restarts: int = 3):
        ray = import_ray()
        if workers is not None and workers < 1:
            raise WorkbenchError(f"--ray-workers must be >= 1, got {workers}")
        if gpus_per_worker is not None and gpus_per_worker < 0:
            raise WorkbenchError(f"--ray-gpus-per-worker must be >= 0, got {gpus_per_worker}")
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            try:
                local = {} if address else {"include_dashboard": False}
                ray.init(address=address, log_to_driver=False, **local)
            except (ConnectionError, ValueError, RuntimeError) as exc:  # unreachable, malformed
                raise WorkbenchError(f"could not connect to Ray at {address!r} ({exc}); start "
                                     "the cluster with `ray start --head` or give its address "
                                     "(auto, or ray://HOST:10001)") from None
        resources = ray.cluster_resources()
        n_gpus = int(resources.get("GPU", 0))
        gpus = gpus_per_worker if gpus_per_worker is not None else (1 if n_gpus else 0)
        if gpus > n_gpus:
            self.close()
            raise WorkbenchError(f"--ray-gpus-per-worker {gpus} but the Ray cluster has "
                                 f"{n_gpus} GPU(s); ask for at most {n_gpus}")
        n_cpus = max(int(resources.get("CPU", 1)), 1)
        self.n_workers = workers or (n_gpus // gpus if gpus else min(2, n_cpus))
        self.gpus_per_worker = gpus
        # several GPUs per replica: accelerate spreads the layers over the actor's GPUs (Ray
        # sets CUDA_VISIBLE_DEVICES to them); one GPU: the actor's only visible GPU, cuda:0
        device_map = "auto" if gpus > 1 else None
        worker_device = None if gpus > 1 else ("cuda" if gpus else "cpu")
        # a dead actor is restarted (reloading the model) and its running items retried on it,
        # by Ray, up to max_restarts times; past that the driver gives its items to the others
        actor = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=max_restarts,
                           max_task_retries=-1)(Replica)
        self.actors = [actor.remote(model, worker_device, trust_remote_code, device_map, dtype)
                       for _ in range(self.n_workers)]
        self.resubmitted = 0  # items given to another actor because theirs died for good
        self.running: dict = {}  # during a call: what each actor is running

    def __call__(self, items: Sequence[GenerationItem]
                 ) -> Iterator[tuple[GenerationItem, list[list[list[int]]]]]:
        """Each item and its token ids, as they finish; an item whose actor died runs again.

        One call at a time per executor.
        """
        ray = import_ray()
        queue = deque(range(len(items)))
        pending = self.running = {}  # object ref -> (item index, actor), newest last
        idle = list(self.actors)

        def fill():
            while queue and idle:
                i, actor = queue.popleft(), idle.pop()
                pending[actor.run.remote(items[i])] = (i, actor)

        try:
            fill()
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                i, actor = pending.pop(ref)
                try:
                    ids = ray.get(ref)
                except ray.exceptions.RayActorError:
                    # Ray retries a task on its restarted actor by itself, so this actor is gone
                    # for good: its item goes to another one
                    if actor in self.actors:
                        self.actors.remove(actor)
                    queue.appendleft(i)
                    self.resubmitted += 1
                    fill()
                    continue
                idle.append(actor)
                fill()  # before the driver judges this item, so the actor keeps working
                yield items[i], ids
            if queue:
                raise WorkbenchError("every Ray worker died and Ray gave up restarting them "
                                     "(see the Ray logs); re-run the same command to resume")
        finally:  # the driver stopped early: drop what is still running
            for ref in pending:
                with suppress(Exception):  # best effort: their results are ignored anyway
                    ray.cancel(ref)

    def close(self) -> None:
        """Release the actors; shut Ray down if this executor started it."""
        ray = import_ray()
        for actor in getattr(self, "actors", []):
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self.owns_ray:
            ray.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
