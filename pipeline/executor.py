"""Where shards run: Ray tasks for CPU stages, a Ray actor pool for model stages, or in-process.

The executor knows nothing of the run store: it gets jobs (a shard's input tables and its
:class:`ShardOutput`), runs the stage's ``run_shard`` somewhere, retries failures a bounded number
of times, and hands every finished shard to ``on_done`` as soon as it finishes, so the runner can
commit it before the next one ends. A shard that still fails is reported with its index and cause.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa

from stages.lib.errors import PipelineError, StageFailedError, first_line
from stages.base import ShardInputs, ShardOutput, ShardResult, StageConfig, StageSpec

__all__ = ["ShardJob", "LocalExecutor", "RayExecutor", "execute_shard"]

OnDone = Callable[["ShardJob", ShardResult, float], None]


@dataclass
class ShardJob:
    """One shard to run: its index, fingerprint, a loader for its input tables, where it stands, and the
    content hashes of its inputs (recorded in the manifest, to tell later whether they are still current)."""

    index: int
    fingerprint: str
    load_inputs: Callable[[], dict[str, pa.Table]]
    output: ShardOutput
    input_hashes: list[str] = field(default_factory=list)
    scratch_key: str = ""  # what its scratch folder is kept under (see pipeline.runner.scratch_key)


def execute_shard(
    spec: StageSpec, config: StageConfig, tables: dict[str, pa.Table], output: ShardOutput, resources: Any = None
) -> tuple[ShardResult, float]:
    """Run one shard of ``spec`` and return its result and wall time in seconds."""
    output.scratch_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = spec.run_shard(ShardInputs(tables=tables, resources=resources), output, config)
    return result, time.perf_counter() - start


def _fail(spec: StageSpec, failures: dict[int, BaseException], attempts: int) -> StageFailedError:
    index, exc = sorted(failures.items())[0]
    more = f" (and {len(failures) - 1} other shard(s))" if len(failures) > 1 else ""
    return StageFailedError(
        f"stage {spec.name}: shard {index} failed after {attempts} attempt(s): {first_line(exc)}{more}; "
        f"finished shards are kept, fix the cause and run again to resume"
    )


class LocalExecutor:
    """Runs shards one after another in this process (debugging, and tests of the runner logic)."""

    def run(self, spec: StageSpec, config: StageConfig, jobs: list[ShardJob], on_done: OnDone, max_retries: int) -> None:
        """Run every job; raise :class:`StageFailedError` after all others finished if any still fails."""
        resources = spec.setup(config) if spec.setup else None
        failures: dict[int, BaseException] = {}
        for job in jobs:
            for attempt in range(max_retries + 1):
                try:
                    result, seconds = execute_shard(spec, config, job.load_inputs(), job.output, resources)
                except PipelineError:
                    raise
                except Exception as exc:  # any shard failure is retried, then reported
                    failures[job.index] = exc
                    continue
                failures.pop(job.index, None)
                on_done(job, result, seconds)
                break
        if failures:
            raise _fail(spec, failures, max_retries + 1)


def _unwrap(exc: BaseException) -> BaseException:
    """Return the user's exception inside a Ray error (RayTaskError keeps it as ``cause``)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class _ShardActor:
    """A Ray actor that loads the stage's resources (a model) once and runs many shards."""

    def __init__(self, spec: StageSpec, config: StageConfig):
        self.spec = spec
        self.config = config
        self.resources = None
        self.setup_error: BaseException | None = None
        try:
            self.resources = self.spec.setup(config) if self.spec.setup else None
        except Exception as exc:  # re-raised by ready() so the driver sees the user's error
            self.setup_error = exc

    def ready(self) -> bool:
        """Raise the setup error, if any (a creation-task error would reach the driver as ActorDiedError)."""
        if self.setup_error is not None:
            raise self.setup_error
        return True

    def run(self, tables: dict[str, pa.Table], output: ShardOutput) -> tuple[ShardResult, float]:
        self.ready()  # a replacement actor's setup error surfaces on its first shard
        return execute_shard(self.spec, self.config, tables, output, self.resources)


def _run_task(spec: StageSpec, config: StageConfig, tables: dict[str, pa.Table], output: ShardOutput):
    return execute_shard(spec, config, tables, output)


class RayExecutor:
    """Runs shards on Ray: one task per shard for CPU stages, an actor pool for model stages.

    At most ``max_in_flight`` shards have their inputs loaded at once, so the driver's memory does
    not grow with the corpus.
    """

    def __init__(self, cpus_per_task: float = 1.0, max_in_flight: int | None = None):
        self.cpus_per_task = cpus_per_task
        self.max_in_flight = max_in_flight

    def run(self, spec: StageSpec, config: StageConfig, jobs: list[ShardJob], on_done: OnDone, max_retries: int) -> None:
        """Run every job on Ray; raise :class:`StageFailedError` after the others finished if any still fails."""
        import ray

        if spec.uses_model:
            submit, window, close = self._actor_pool(ray, spec, config)
        else:
            remote = ray.remote(_run_task).options(num_cpus=self.cpus_per_task, max_retries=0)
            window = self.max_in_flight or max(2, int(ray.cluster_resources().get("CPU", 1) / self.cpus_per_task) * 2)

            def submit(job: ShardJob):
                return remote.remote(spec, config, job.load_inputs(), job.output)

            def close() -> None:
                return None

        try:
            self._drive(ray, spec, jobs, submit, window, on_done, max_retries)
        finally:
            close()

    def _actor_pool(self, ray, spec: StageSpec, config: StageConfig):
        num_actors = max(1, int(getattr(config, "num_actors", 1) or 1))
        # no Ray restarts: a dead actor is replaced below, so deaths never exhaust the pool
        options = {"num_cpus": float(getattr(config, "num_cpus", 1) or 1), "max_restarts": 0}
        num_gpus = float(getattr(config, "num_gpus", 0) or 0)
        if num_gpus:
            options["num_gpus"] = num_gpus
        actor_cls = ray.remote(_ShardActor).options(**options)
        actors = [actor_cls.remote(spec, config) for _ in range(num_actors)]
        try:
            ray.get([a.ready.remote() for a in actors])
        except Exception as exc:  # setup failed (bad model path...): report the user's error, not Ray's
            for actor in actors:
                ray.kill(actor)
            cause = _unwrap(exc)
            if isinstance(cause, PipelineError):
                raise cause from None
            raise StageFailedError(f"stage {spec.name}: loading failed: {first_line(cause)}") from None
        idle: deque = deque(actors)
        busy: dict[Any, Any] = {}

        def submit(job: ShardJob):
            tables = job.load_inputs()  # before taking an actor: a load error must not lose it
            actor = idle.popleft()
            ref = actor.run.remote(tables, job.output)
            busy[ref] = actor
            return ref

        def release(ref, error: BaseException | None = None) -> None:
            actor = busy.pop(ref)
            if isinstance(error, ray.exceptions.RayActorError):  # its process died mid-shard (OOM, segfault)
                ray.kill(actor)
                actor = actor_cls.remote(spec, config)
                actors.append(actor)
            idle.append(actor)

        def close() -> None:
            for actor in actors:
                ray.kill(actor)

        submit.release = release  # type: ignore[attr-defined]
        return submit, num_actors, close

    def _drive(self, ray, spec, jobs, submit, window, on_done, max_retries) -> None:
        queue: deque[tuple[ShardJob, int]] = deque((job, 1) for job in jobs)
        in_flight: dict[Any, tuple[ShardJob, int]] = {}
        failures: dict[int, BaseException] = {}
        release = getattr(submit, "release", None)

        def failed(job: ShardJob, attempt: int, exc: BaseException) -> None:
            cause = _unwrap(exc)
            if isinstance(cause, PipelineError):
                raise cause from None
            if attempt <= max_retries:
                queue.append((job, attempt + 1))
            else:
                failures[job.index] = cause

        while queue or in_flight:
            while queue and len(in_flight) < window:
                job, attempt = queue.popleft()
                try:
                    in_flight[submit(job)] = (job, attempt)
                except Exception as exc:  # its inputs could not be read: retried, then reported
                    failed(job, attempt, exc)
            if not in_flight:
                continue
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            ref = ready[0]
            job, attempt = in_flight.pop(ref)
            error: BaseException | None = None
            try:
                result, seconds = ray.get(ref)
            except Exception as exc:  # retried, then reported with its shard
                error = exc
            if release:
                release(ref, error)
            if error is not None:
                failed(job, attempt, error)
                continue
            on_done(job, result, seconds)
        if failures:
            raise _fail(spec, failures, max_retries + 1)

