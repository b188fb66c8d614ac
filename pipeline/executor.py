"""Where shards run: Ray tasks for CPU stages, a Ray actor pool for model stages, or in-process.

The executor gets jobs and runs each one's :func:`run_job` somewhere: the worker reads the shard's
input files from the run folder, runs the stage's ``run_shard``, and writes the output tables under
temporary names beside their final paths (:meth:`pipeline.store.RunStore.stage_shard`). What comes
back to the driver is a small :class:`ShardDone` (file names, hashes, row counts, metrics, the node),
never a table: the driver only plans, renames and records (the runner's ``commit``). Failures are
retried a bounded number of times; every finished shard goes to ``on_done`` as soon as it finishes.
A shard that still fails is reported with its index and cause.

The run folder must therefore be the same path on every node (shared storage):
:func:`pipeline.ray_runtime.check_run_dir_shared` checks it before the first stage.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from pipeline.shard_check import mismatched_files
from pipeline.store import RunStore, StagedShard, read_files
from stages.base import ShardInputs, ShardOutput, ShardResult, StageConfig, StageSpec
from stages.lib.errors import PipelineError, StageFailedError, first_line
from stages.vlm import shared as shared_engines

_log = logging.getLogger(__name__)

__all__ = [
    "ShardJob", "ShardDone", "LocalExecutor", "RayExecutor", "execute_shard", "run_job", "stage_result", "engine_key",
]


@dataclass
class ShardJob:
    """One shard to run: its index and fingerprint, what it reads, where it stands, and the content
    hashes of its inputs (recorded in the manifest, to tell later whether they are still current).

    ``input_files`` are Parquet files in the run folder (read by the worker, concatenated per table);
    ``input_tables`` are small tables shipped with the job (a source stage's planned records);
    ``input_sha256`` maps an input file (as in ``input_files``) to the sha256 its producer's manifest
    recorded: the worker checks it before decoding (:mod:`pipeline.shard_check`).
    """

    index: int
    fingerprint: str
    output: ShardOutput
    run_dir: Path
    input_files: dict[str, list[Path]] = field(default_factory=dict)
    input_tables: dict[str, pa.Table] = field(default_factory=dict)
    input_hashes: list[str] = field(default_factory=list)
    scratch_key: str = ""  # what its scratch folder is kept under (see pipeline.runner.scratch_key)
    input_sha256: dict[str, str] = field(default_factory=dict)

    def load_inputs(self) -> dict[str, pa.Table]:
        """Read the shard's input tables (wherever this runs: the run folder is shared), each file checked
        against its recorded sha256; raises :class:`pipeline.shard_check.ShardHashError` on a mismatch."""
        tables = {name: read_files(name, paths, sha256=self.input_sha256) for name, paths in self.input_files.items()}
        return {**tables, **self.input_tables}


@dataclass
class ShardDone:
    """What a worker hands back for a finished shard: its staged files and counters, no table."""

    staged: StagedShard
    metrics: dict[str, float]
    artifacts: list[str]
    seconds: float
    node: str = ""

    @property
    def rows(self) -> int:
        return sum(self.staged.rows.values())


OnDone = Callable[[ShardJob, "ShardDone | ShardResult", float], None]


def execute_shard(
    spec: StageSpec, config: StageConfig, tables: dict[str, pa.Table], output: ShardOutput, resources: Any = None
) -> tuple[ShardResult, float]:
    """Run one shard of ``spec`` on in-memory tables and return its result and wall time in seconds."""
    output.scratch_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = spec.run_shard(ShardInputs(tables=tables, resources=resources), output, config)
    return result, time.perf_counter() - start


def stage_result(spec: StageSpec, job: ShardJob, result: ShardResult, seconds: float, node: str = "") -> ShardDone:
    """Write ``result``'s tables and quarantine rows under temporary names in the run folder; return what to commit."""
    missing = [t for t in spec.writes if t not in result.tables]
    if missing:
        raise RuntimeError(f"stage {spec.name} shard {job.index} returned no table {missing}")
    store = RunStore(job.run_dir)
    quarantine = store.quarantine_table(spec.name, job.index, result.quarantine)
    staged = store.stage_shard(spec.name, job.index, spec.writes[0] if spec.writes else "", result.tables, quarantine)
    return ShardDone(staged, dict(result.metrics), list(result.artifacts), seconds, node)


def _node_id() -> str:
    """The Ray node this process runs on, or "" outside Ray (ray is not imported just to ask)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return ""
    return ray.get_runtime_context().get_node_id()


def run_job(spec: StageSpec, config: StageConfig, job: ShardJob, resources: Any = None) -> ShardDone:
    """The worker's whole part of a shard: read its inputs, run it, stage its outputs in the run folder."""
    result, seconds = execute_shard(spec, config, job.load_inputs(), job.output, resources)
    return stage_result(spec, job, result, seconds, _node_id())


def engine_key(spec: StageSpec, config: StageConfig) -> tuple | None:
    """The engine a model stage loads (:func:`stages.vlm.shared.engine_identity` of its ``engine`` table), which stages
    with equal keys share; None for a CPU stage or a model stage that loads a model of its own (train)."""
    engine = getattr(config, "engine", None)
    if not spec.uses_model or engine is None:
        return None
    return shared_engines.engine_identity(engine)


def _fail(spec: StageSpec, failures: dict[int, BaseException], attempts: int) -> StageFailedError:
    index, exc = sorted(failures.items())[0]
    more = f" (and {len(failures) - 1} other shard(s))" if len(failures) > 1 else ""
    return StageFailedError(
        f"stage {spec.name}: shard {index} failed after {attempts} attempt(s): {first_line(exc)}{more}; "
        f"finished shards are kept, fix the cause and run again to resume"
    )


class LocalExecutor:
    """Runs shards one after another in this process (debugging, and tests of the runner logic).

    With ``share_engines``, model stages on the same engine (:func:`engine_key`) share one loaded model
    (:mod:`stages.vlm.shared`) until a model stage on another engine, or :meth:`close`, releases it.
    """

    def __init__(self, share_engines: bool = True) -> None:
        self.share_engines = share_engines

    def run(self, spec: StageSpec, config: StageConfig, jobs: list[ShardJob], on_done: OnDone, max_retries: int) -> None:
        """Run every job; raise :class:`StageFailedError` after all others finished if any still fails."""
        if spec.uses_model and (not self.share_engines or engine_key(spec, config) != shared_engines.held_key()):
            shared_engines.release()  # before a model of another kind (train's) takes the memory
        if self.share_engines and spec.uses_model:
            shared_engines.enable_sharing()
        resources = spec.setup(config) if spec.setup else None
        failures: dict[int, BaseException] = {}
        for job in jobs:
            for attempt in range(max_retries + 1):
                try:
                    done = run_job(spec, config, job, resources)
                except PipelineError:
                    raise
                except Exception as exc:  # any shard failure is retried, then reported
                    failures[job.index] = exc
                    continue
                failures.pop(job.index, None)
                on_done(job, done, done.seconds)
                break
        if failures:
            raise _fail(spec, failures, max_retries + 1)

    def verify(self, expected: dict[str, str]) -> list[str]:
        """The files of ``expected`` (path -> sha256) whose bytes do not match (in this process)."""
        return mismatched_files(expected)

    def close(self) -> None:
        """Release the shared engine and stop sharing (the end of a run)."""
        shared_engines.stop_sharing()


def _unwrap(exc: BaseException) -> BaseException:
    """Return the user's exception inside a Ray error (RayTaskError keeps it as ``cause``)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class _ShardActor:
    """A Ray actor that loads the stage's resources (a model) once and runs many shards.

    With ``share_engines`` it can :meth:`prepare` for a later stage on the same engine: that stage's
    setup finds the model already loaded in this process (:mod:`stages.vlm.shared`).
    """

    def __init__(self, spec: StageSpec, config: StageConfig, share_engines: bool = False):
        if share_engines:
            shared_engines.enable_sharing()
        self.spec = spec
        self.config = config
        self.resources = None
        self.setup_error: BaseException | None = None
        self._setup()

    def _setup(self) -> None:
        try:
            self.resources = self.spec.setup(self.config) if self.spec.setup else None
        except Exception as exc:  # re-raised by ready() so the driver sees the user's error
            self.setup_error = exc

    def prepare(self, spec: StageSpec, config: StageConfig) -> bool:
        """Switch to ``spec``'s stage (its setup reuses the loaded engine); raise its setup error, if any."""
        self.spec, self.config, self.resources, self.setup_error = spec, config, None, None
        self._setup()
        return self.ready()

    def ready(self) -> bool:
        """Raise the setup error, if any (a creation-task error would reach the driver as ActorDiedError)."""
        if self.setup_error is not None:
            raise self.setup_error
        return True

    def run(self, job: ShardJob) -> ShardDone:
        self.ready()  # a replacement actor's setup error surfaces on its first shard
        return run_job(self.spec, self.config, job, self.resources)


def _run_task(spec: StageSpec, config: StageConfig, job: ShardJob) -> ShardDone:
    return run_job(spec, config, job)


def _setup_failed(ray, spec: StageSpec, exc: BaseException) -> PipelineError:
    """The user's error from an actor's setup (a bad model path...), not Ray's wrapper."""
    cause = _unwrap(exc)
    if isinstance(cause, PipelineError):
        return cause
    return StageFailedError(f"stage {spec.name}: loading failed: {first_line(cause)}")


class _TaskPool:
    """CPU stages: one Ray task per shard, at most ``window`` in flight."""

    def __init__(self, ray, spec: StageSpec, config: StageConfig, cpus: float, window: int, resources: dict[str, float]):
        options: dict[str, Any] = {"num_cpus": cpus, "max_retries": 0}
        if resources:
            options["resources"] = resources
        self.remote = ray.remote(_run_task).options(**options)
        self.spec, self.config, self.window = spec, config, window
        self.in_flight = 0

    def can_submit(self) -> bool:
        return self.in_flight < self.window

    def submit(self, job: ShardJob):
        self.in_flight += 1
        return self.remote.remote(self.spec, self.config, job)

    def release(self, ref, error: BaseException | None) -> None:
        self.in_flight -= 1

    def starting(self) -> list:
        return []

    def started(self, ref) -> None:  # never called: no actors
        raise KeyError(ref)

    def close(self) -> None:
        return None


class _ActorPool:
    """Model stages: ``num_actors`` actors, each loading the model once; a dead actor is replaced.

    A replacement joins the pool only once its model is loaded, and shards go only to actors that are
    ready, so a replacement that cannot be placed (its node left the cluster and no other node has
    the resources) never holds a shard: the remaining actors do the work.
    """

    def __init__(
        self, ray, spec: StageSpec, config: StageConfig, resources: dict[str, float], start_timeout: float,
        share_engines: bool = False,
    ):
        self.ray, self.spec, self.config = ray, spec, config
        self.share_engines = share_engines
        self.start_timeout = start_timeout
        where = getattr(config, "engine", config)  # model stages: [<stage>.engine]; train: its own fields
        self.window = max(1, int(getattr(where, "num_actors", 1) or 1))
        # no Ray restarts: a dead actor is replaced below, so deaths never exhaust the pool
        options: dict[str, Any] = {"num_cpus": float(getattr(where, "num_cpus", 1) or 1), "max_restarts": 0}
        num_gpus = float(getattr(where, "num_gpus", 0) or 0)
        if num_gpus:
            options["num_gpus"] = num_gpus
        if resources:
            options["resources"] = resources
        self.options = options
        self.actor_cls = ray.remote(_ShardActor).options(**options)
        self.actors = [self.actor_cls.remote(spec, config, share_engines) for _ in range(self.window)]
        self.started_actors = len(self.actors)
        self.idle: deque = deque()
        self.busy: dict[Any, Any] = {}
        self.pending: dict[Any, Any] = {}  # ready() ref -> replacement actor still loading
        try:
            ray.get([a.ready.remote() for a in self.actors], timeout=start_timeout)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise StageFailedError(self.unplaceable(start_timeout)) from None
        except Exception as exc:  # setup failed (bad model path...): report the user's error, not Ray's
            self.close()
            raise _setup_failed(ray, spec, exc) from None
        self.idle.extend(self.actors)

    def unplaceable(self, seconds: float) -> str:
        wanted = {**self.options.get("resources", {}), **self.options}
        asked = ", ".join(f"{k}={v}" for k, v in sorted(wanted.items()) if k not in ("max_restarts", "resources"))
        return (
            f"stage {self.spec.name}: no actor could start within {seconds:.0f}s; the cluster has no node with "
            f"the resources an actor asks for ({asked}); check num_gpus / num_cpus and [ray] resources, "
            "or raise [ray] actor_start_timeout_s"
        )

    def can_submit(self) -> bool:
        return bool(self.idle)

    def submit(self, job: ShardJob):
        actor = self.idle.popleft()
        ref = actor.run.remote(job)
        self.busy[ref] = actor
        return ref

    def release(self, ref, error: BaseException | None) -> None:
        actor = self.busy.pop(ref)
        if isinstance(error, self.ray.exceptions.RayActorError):  # its process or node died mid-shard
            self.ray.kill(actor)
            replacement = self.actor_cls.remote(self.spec, self.config, self.share_engines)
            self.started_actors += 1
            self.actors.append(replacement)
            self.pending[replacement.ready.remote()] = replacement
        else:
            self.idle.append(actor)

    def starting(self) -> list:
        return list(self.pending)

    def started(self, ref) -> None:
        """A replacement's ready() returned: it joins the pool, or raises the user's setup error."""
        actor = self.pending.pop(ref)
        try:
            self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            return  # it died while loading (its node went too): the pool stays smaller
        except Exception as exc:
            raise _setup_failed(self.ray, self.spec, exc) from None
        self.idle.append(actor)

    def held_cpus(self) -> float:
        """CPUs the pool's live actors reserve."""
        return float(self.options.get("num_cpus", 1)) * (len(self.idle) + len(self.busy) + len(self.pending))

    def switch(self, spec: StageSpec, config: StageConfig) -> None:
        """Point every live actor at ``spec``'s stage (same engine: nothing is loaded again)."""
        self.spec, self.config = spec, config
        live = list(self.idle)
        try:
            self.ray.get([a.prepare.remote(spec, config) for a in live], timeout=self.start_timeout)
        except Exception as exc:
            raise _setup_failed(self.ray, spec, exc) from None

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)


class RayExecutor:
    """Runs shards on Ray: one task per shard for CPU stages, an actor pool for model stages.

    ``resources`` maps a stage name to the custom Ray resources each of its tasks or actors asks for
    (``{"sample": {"accel": 1}}`` routes the sample actors to the nodes started with that resource).
    At most ``max_in_flight`` CPU shards are submitted at once.

    With ``share_engines``, the actor pool of a model stage stays up after it, and the next model stage
    with the same engine (:func:`engine_key`) and the same actor resources runs on those actors, whose
    process still holds the loaded model: sample, perturb and reference load the policy once per actor
    per run. The pool is closed before a model stage on another engine, before a CPU stage when the
    cluster has no CPU left beside it, and by :meth:`close`. ``actors_started`` counts the actors this
    executor started (replacements included).
    """

    def __init__(
        self,
        cpus_per_task: float = 1.0,
        max_in_flight: int | None = None,
        resources: dict[str, dict[str, float]] | None = None,
        actor_start_timeout_s: float = 600.0,
        share_engines: bool = True,
    ):
        self.cpus_per_task = cpus_per_task
        self.max_in_flight = max_in_flight
        self.resources = resources or {}
        self.actor_start_timeout_s = actor_start_timeout_s
        self.share_engines = share_engines
        self._pools: list[_ActorPool] = []
        self._kept: _ActorPool | None = None  # the last model stage's pool, kept for the next on its engine
        self._kept_key: tuple | None = None

    def run(self, spec: StageSpec, config: StageConfig, jobs: list[ShardJob], on_done: OnDone, max_retries: int) -> None:
        """Run every job on Ray; raise :class:`StageFailedError` after the others finished if any still fails."""
        import ray

        resources = dict(self.resources.get(spec.name, {}))
        if spec.uses_model:
            pool: _TaskPool | _ActorPool = self._model_pool(ray, spec, config, resources)
        else:
            # from the totals, not ray.available_resources(): that lags behind tasks that just finished
            free = ray.cluster_resources().get("CPU", 0) - (self._kept.held_cpus() if self._kept is not None else 0)
            if self._kept is not None and free < self.cpus_per_task:
                _log.info("stage %s: %.1f CPUs left beside the kept model actors; stopping them", spec.name, free)
                self.close()  # the kept actors hold the CPUs this stage's tasks need
            window = self.max_in_flight or max(2, int(ray.cluster_resources().get("CPU", 1) / self.cpus_per_task) * 2)
            pool = _TaskPool(ray, spec, config, self.cpus_per_task, window, resources)
        keep = False
        try:
            self._drive(ray, spec, jobs, pool, on_done, max_retries)
            keep = isinstance(pool, _ActorPool) and self._kept is pool
        finally:
            if isinstance(pool, _ActorPool) and not keep:
                self._kept, self._kept_key = None, None
                pool.close()
            elif isinstance(pool, _TaskPool):
                pool.close()

    def _model_pool(self, ray, spec: StageSpec, config: StageConfig, resources: dict[str, float]) -> _ActorPool:
        """The kept pool when it runs this stage's engine with the same actor resources, else a new one."""
        engine = engine_key(spec, config) if self.share_engines else None
        where = getattr(config, "engine", config)
        key = None if engine is None else (
            engine, int(getattr(where, "num_actors", 1)), float(getattr(where, "num_cpus", 1)),
            float(getattr(where, "num_gpus", 0)), tuple(sorted(resources.items())),
        )
        if self._kept is not None and key is not None and key == self._kept_key:
            self._kept.switch(spec, config)
            return self._kept
        self.close()
        pool = _ActorPool(ray, spec, config, resources, self.actor_start_timeout_s, share_engines=key is not None)
        self._pools.append(pool)
        if key is not None:
            self._kept, self._kept_key = pool, key
        return pool

    @property
    def actors_started(self) -> int:
        """Model actors this executor started so far, replacements included."""
        return sum(p.started_actors for p in self._pools)

    def close(self) -> None:
        """Stop the kept model actors (the end of a run, or before a stage that needs their resources)."""
        if self._kept is not None:
            self._kept.close()
        self._kept, self._kept_key = None, None

    def verify(self, expected: dict[str, str], files_per_task: int = 64) -> list[str]:
        """The files of ``expected`` (path -> sha256) whose bytes do not match, hashed by Ray tasks on the
        workers (the driver reads no shard), ``files_per_task`` files per task."""
        import ray

        items = sorted(expected.items())
        remote = ray.remote(mismatched_files).options(num_cpus=self.cpus_per_task, max_retries=1)
        refs = [remote.remote(dict(items[i : i + files_per_task])) for i in range(0, len(items), files_per_task)]
        return sorted(path for bad in ray.get(refs) for path in bad)

    def _drive(self, ray, spec, jobs, pool, on_done, max_retries) -> None:
        queue: deque[tuple[ShardJob, int]] = deque((job, 1) for job in jobs)
        in_flight: dict[Any, tuple[ShardJob, int]] = {}
        failures: dict[int, BaseException] = {}

        def failed(job: ShardJob, attempt: int, exc: BaseException) -> None:
            cause = _unwrap(exc)
            if isinstance(cause, PipelineError):
                raise cause from None
            if attempt <= max_retries:
                queue.append((job, attempt + 1))
            else:
                failures[job.index] = cause

        while queue or in_flight:
            while queue and pool.can_submit():
                job, attempt = queue.popleft()
                in_flight[pool.submit(job)] = (job, attempt)
            waiting = list(in_flight) + pool.starting()
            if not in_flight and not pool.starting():
                raise StageFailedError(
                    f"stage {spec.name}: every actor died and none could be replaced; {len(queue)} shard(s) not run; "
                    "finished shards are kept, run again to resume"
                )
            timeout = None if in_flight else self.actor_start_timeout_s
            ready, _ = ray.wait(waiting, num_returns=1, timeout=timeout)
            if not ready:
                raise StageFailedError(pool.unplaceable(self.actor_start_timeout_s))
            ref = ready[0]
            if ref not in in_flight:
                pool.started(ref)
                continue
            job, attempt = in_flight.pop(ref)
            error: BaseException | None = None
            try:
                done = ray.get(ref)
            except Exception as exc:  # retried, then reported with its shard
                error = exc
            pool.release(ref, error)
            if error is not None:
                failed(job, attempt, error)
                continue
            on_done(job, done, done.seconds)
        if failures:
            raise _fail(spec, failures, max_retries + 1)
