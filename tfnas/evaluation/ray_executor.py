"""The Ray executor: the process executor's contract on Ray actors, on this machine or a cluster.

``[run] executor = ray`` with ``[run] ray_address``:

- ``local`` starts a private Ray instance in this process (no network; ~3-5 s; also where
  ``RAY_ADDRESS`` or an earlier ``ray start`` names a cluster), with at least as many logical CPUs
  as the workers reserve, and its session files in a temporary folder; :meth:`RayExecutor.close`
  stops it and removes the folder. On a cluster, as many workers start as its free CPUs can place
  (a warning says so; an actor Ray cannot place would never start). The workers of a private
  instance run at the driver's priority, like the process pool's
  (Ray's own default is nice 15, which on a busy machine starves them; an explicit
  ``RAY_worker_niceness`` wins). Extra ``ray.init`` arguments (``object_store_memory``,
  ``_temp_dir``, ...) come from ``init_kwargs``; the tests cap the object store and keep Ray's
  files in a temporary folder. Ray's token authentication guards the instance (its ports listen on
  every network interface in Ray 2.60, even with a loopback node address): with none of
  ``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` set, the instance gets a token of
  this process, held in the environment while it runs, instead of the token file Ray would write
  under the home folder (``~/.ray/auth_token``).
- ``auto`` joins the cluster this machine is part of (``ray start --head`` on the head node,
  ``ray start --address=HEAD:6379`` on the others); ``HOST:PORT`` joins that head node.

One actor per worker holds the jobs it has built (traced functions stay warm between batches); each asks Ray
for ``num_cpus = max(1, threads)`` and, when GPUs are visible to Ray, a share of one (``1 / ceil(workers /
GPUs)``, :func:`~tfnas.evaluation.gpus.gpus_per_actor`), so the workers spread evenly over the GPUs, several
to a GPU when there are more workers than GPUs. Chunks go to whichever actor is free; results are put back
in submission order. An actor that dies is replaced by a new one (in the same slot, with the same temp
folder) and its chunk submitted again, with a warning; more than ``max_restarts`` deaths within one batch
fail the batch, as in the process pool (Ray's own ``max_restarts`` counts over an actor's life, so a long
search failed after a few deaths hours apart). An item that raises comes back as
:class:`~tfnas.evaluation.executors.Failed`. Ctrl-C (or a caller that stops reading
:meth:`RayExecutor.imap`) cancels the tasks and kills the actors (the next batch starts new ones); the
caller gets the KeyboardInterrupt. A Ctrl-C while a private instance starts or stops is held back until it has
started (then it is stopped) or stopped, and then delivered: cut short, Ray left its processes running
and its folder behind. A second Ctrl-C is not held back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Dict, Generator, Iterator, List, Optional, Sequence, Tuple

from tfnas.evaluation.executors import (Executor, ExecutorError, Job, PreparedJob, RayAddressError, chunk_ranges,
                                        cpu_count, in_order, init_worker, parent_onednn, prepare_job, run_chunk)
from tfnas.evaluation.gpus import gpus_per_actor
from tfnas.evaluation.ray_signals import deliver_interrupt, interrupts_deferred, shutdown, sigterm_kept
from tfnas.evaluation.ray_access import (TOKEN_HELP, check_head, check_reachable, check_token_file, drop_process_token,
                                         refused_token, use_process_token)
from tfnas.evaluation.tempdirs import make_temp_dir, release

logger = logging.getLogger(__name__)

__all__ = ["RayExecutor"]


#: Ray's note when it joins a cluster with a token found on disk ("Token authentication is enabled for this Ray
#: cluster. Set RAY_AUTH_MODE=disabled to opt out"): advice to whoever started the cluster, shown at -v only
_RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


@contextlib.contextmanager
def _quiet_logger(name: str, quiet: bool) -> Iterator[None]:
    """Logger ``name`` shows errors only meanwhile (when ``quiet``)."""
    target = logging.getLogger(name)
    level = target.level
    if quiet:
        target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(level)


def _death_reason(exc: BaseException) -> str:
    """Ray's account of an actor's death on one line, without the tab-indented ids (class, actor id, pid,
    address) between its general first line and the reason (an exit code, an out-of-memory kill, the
    error of its creation task), nor a traceback's indented lines."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line[:1].isspace()]
    why = " ".join(lines) or type(exc).__name__
    return why if len(why) <= 500 else why[:497] + "..."


def _auto_address(ray: Any) -> str:
    """``HOST:PORT`` of the cluster ``ray.init(address="auto")`` would join (``RAY_ADDRESS``, else the last
    ``ray start`` on this machine), or ``""`` where there is none or Ray's internals differ."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        found = canonicalize_bootstrap_address("auto")
    except Exception:  # none found (ray.init says so), or another Ray layout
        return ""
    return found if isinstance(found, str) and "://" not in found else ""


class _Worker:
    """The body of one Ray actor (wrapped by ``ray.remote`` in :class:`RayExecutor`)."""

    def __init__(self, threads: int, onednn: str = "", temp_root: Optional[str] = None, slot: str = ""):
        # What this actor's TensorFlow writes to the temp folder (AutoGraph's converted functions, which
        # it removes at a normal exit, and a killed actor never has one) goes to a folder of its own:
        # inside a private instance's Ray folder (removed with the instance, also after Ctrl-C), else in
        # the Ray session folder of the actor's machine (with Ray's own files), removed by remove_temp_dir
        # before the actor is killed at the end. It is named by the executor's slot of the actor, so the actor
        # that replaces a dead or killed one takes over (and empties) the folder of its predecessor.
        import ray

        root = temp_root or _session_dir() or tempfile.gettempdir()
        self._temp_dir = os.path.join(root, f"tfnas-actor-{slot or ray.get_runtime_context().get_actor_id()}")
        shutil.rmtree(self._temp_dir, ignore_errors=True)
        os.makedirs(self._temp_dir, mode=0o700)
        tempfile.tempdir = self._temp_dir
        init_worker(threads, onednn)

    def remove_temp_dir(self) -> None:
        shutil.rmtree(self._temp_dir, ignore_errors=True)

    def run(self, key: str, payload: bytes, items: Sequence[Any], tensorflow: bool = True) -> List[Any]:
        return run_chunk(key, payload, items, tensorflow)


def _session_dir() -> str:
    """The Ray session folder of this worker's machine (``""`` where Ray does not say)."""
    try:
        import ray

        return str(ray._private.worker.global_worker.node.get_session_dir_path())
    except Exception:  # another Ray layout
        return ""


def _ray_temp_root() -> Optional[str]:
    """Where Ray would put its own folder (``RAY_TMPDIR`` first; a short system folder where the
    platform's default is too long for Ray's socket paths), or ``None`` for Python's default."""
    try:
        from ray._common.utils import get_default_system_temp_dir
    except ImportError:  # another Ray layout
        return os.environ.get("RAY_TMPDIR") or None
    return get_default_system_temp_dir()


class RayExecutor(Executor):
    """Ray actors as workers (module docstring).

    Args:
        workers: actors (0 = one per GPU Ray sees, else one per ``threads`` CPUs of the cluster).
        threads: TensorFlow intra-op threads per actor (0 = TensorFlow's default, as in this process);
            each actor reserves ``max(1, threads)`` Ray CPUs.
        address: ``local``, ``auto`` or ``HOST:PORT`` (module docstring).
        init_kwargs: extra ``ray.init`` arguments for a ``local`` instance.
        chunk: items per task (0 = about four tasks per actor and batch).
        max_restarts: deaths of actors within one batch that are survived (a new actor takes the dead
            one's chunk); one more fails the batch.
    """

    name = "ray"

    def __init__(self, workers: int = 0, *, threads: int = 0, address: str = "local",
                 init_kwargs: Optional[Dict[str, Any]] = None, chunk: int = 0, max_restarts: int = 3):
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is in requirements.txt
            raise ExecutorError("[run] executor = ray needs the `ray` package (pip install -r requirements.txt)"
                                ) from exc
        self._ray = ray
        self._owns = False
        self._local = address == "local"  # a Ray instance of this process, whose CPUs no other job takes
        self._temp_dir = ""
        self._temp_lock: Any = None  # (tfnas.evaluation.tempdirs: a later run removes the folder after kill -9)
        self._actor_root = ""  # where the actors of a private instance keep their temp folders
        self._own_token = False
        self.threads = max(0, int(threads))
        cpus = max(1, self.threads)
        interrupted: List[bool] = []
        try:  # an error or Ctrl-C from here on stops what this executor started (and puts the environment back)
            if not ray.is_initialized():
                # a private instance's start, cut short, leaves Ray's processes and folder behind
                with interrupts_deferred(enabled=address == "local") as interrupted:
                    self._init_ray(ray, address, workers, cpus, init_kwargs)
            if interrupted:
                deliver_interrupt(interrupted)
            self._start_actors(workers, cpus, chunk, max_restarts)
        except BaseException:
            self._close(idle=False)
            raise

    def _init_ray(self, ray: Any, address: str, workers: int, cpus: int,
                  init_kwargs: Optional[Dict[str, Any]]) -> None:
        check_token_file()
        # Ray's own INFO lines ("Started a local Ray instance") only where tfnas' are shown too (-v)
        quiet = not logging.getLogger("tfnas").isEnabledFor(logging.INFO)
        kwargs: Dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.WARNING if quiet else logging.INFO}
        if address == "local":
            # "local": a new instance even where RAY_ADDRESS or an earlier `ray start` names a cluster.
            # It counts at least the CPUs the workers ask for (a logical count: more workers than
            # cores share them, as the process pool's do), so every actor starts.
            kwargs.update(address="local", num_cpus=max(cpu_count(), max(1, workers) * cpus))
            kwargs.update(init_kwargs or {})
            if "_temp_dir" not in kwargs:  # its session files go with the instance, not left behind
                root = _ray_temp_root()
                try:
                    self._temp_dir, self._temp_lock = make_temp_dir("tfnas-ray-", root)
                    kwargs["_temp_dir"] = self._temp_dir
                except OSError as exc:  # named as the folder Ray's files go to, and where that comes from
                    raise OSError(exc.errno, f"cannot make Ray's session folder there ({exc.strerror}); it comes "
                                  f"from RAY_TMPDIR, else TMPDIR (Linux), else the system's temp folder",
                                  root or tempfile.gettempdir()) from exc
            # inside Ray's folder (also one given in init_kwargs), removed at the end
            self._actor_root = os.path.join(kwargs["_temp_dir"], "tfnas-actors")
            self._own_token = use_process_token()
            if "RAY_worker_niceness" not in os.environ:  # Ray runs its workers at nice 15 by default
                kwargs["_system_config"] = {"worker_niceness": 0, **kwargs.get("_system_config", {})}
        else:
            kwargs["address"] = address
            if address != "auto":
                check_reachable(address)
                if not address.startswith("ray://"):  # (a Ray Client server is not a GCS)
                    check_head(address)
            elif os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token":
                # the cluster Ray finds: a token it refuses took ray.init 20 s of retries and warnings (without
                # RAY_AUTH_MODE=token, ray.init learns the cluster's mode itself; the check would not)
                found = _auto_address(ray)
                if found:
                    check_head(found, setting="auto", detail=f"the cluster at {found}")
        self._owns = address == "local"  # from here on, a failed start may have left Ray's processes running
        try:
            with sigterm_kept(ray), _quiet_logger(_RAY_AUTH_LOGGER, quiet):
                ray.init(**kwargs)
        except (OSError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
            if address == "auto" and "Could not find any running Ray instance" in str(exc):
                raise RayAddressError("auto", "no Ray cluster runs on this machine; start one with `ray start "
                                      "--head` (and `ray start --address=HEAD_IP:6379` on the other machines), or "
                                      "use ray_address = local") from exc
            if refused_token(exc):
                raise RayAddressError(address, f"the Ray cluster uses token authentication and refused this "
                                               f"process; {TOKEN_HELP}") from exc
            raise RayAddressError(address, f"cannot start or reach Ray: {exc}") from exc

    def _start_actors(self, workers: int, cpus: int, chunk: int, max_restarts: int) -> None:
        ray = self._ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if workers <= 0:
            workers = gpus if gpus > 0 else max(1, int(resources.get("CPU", 1)) // cpus)
        workers = self._fitting(workers, cpus, self._free_cpus(workers * cpus))
        super().__init__(workers)
        self.chunk, self.max_restarts, self.restarts = int(chunk), int(max_restarts), 0
        # dead actors are replaced here (_chunks), their deaths counted per batch, not by Ray over their life
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus_per_actor(workers, gpus), max_restarts=0,
                            max_task_retries=0)(_Worker)
        self._remote = remote
        self._actors: List[Any] = []
        # on a private instance as many as this machine's cores run at once start now, beside the caller's own
        # set-up, the others when a batch has chunks for them; on a cluster every one now, while _fitting's free
        # CPUs are there (an actor started later might find them taken by another job, and never start)
        self._add_actors(min(self.workers, max(1, cpu_count() // cpus)) if self._local else self.workers)

    def _free_cpus(self, wanted: float, wait_s: float = 5.0) -> float:
        """Ray's free CPUs, waiting up to ``wait_s`` for ``wanted``: the CPUs of actors just killed (an executor
        closed before this one) come back a moment later."""
        deadline = time.monotonic() + wait_s
        while True:
            free = float(self._ray.available_resources().get("CPU", 0.0))
            if free >= wanted or time.monotonic() > deadline:
                return free
            time.sleep(0.2)

    def _fitting(self, workers: int, cpus: int, free: float) -> int:
        """As many of ``workers`` actors as the free CPUs can place (an actor Ray cannot place never starts,
        and the chunks handed to it would wait for ever); none fitting is an :class:`ExecutorError`."""
        fit = int(free // cpus)
        if fit < 1:
            raise ExecutorError(f"[run] worker_threads = {self.threads}: a Ray worker reserves {cpus} CPUs and Ray has "
                                f"{free:g} free; use fewer worker_threads")
        if fit < workers:
            logger.warning("[run] workers = %d: Ray has %g free CPUs for workers of %d CPU%s each, so %d worker%s "
                           "start%s", workers, free, cpus, "" if cpus == 1 else "s", fit, "" if fit == 1 else "s",
                           "s" if fit == 1 else "")
        return min(workers, fit)

    def _add_actors(self, count: int) -> List[Any]:
        """Starts ``count`` more actors (at most :attr:`workers` in all), in the next free slots."""
        added = [self._new_actor(len(self._actors) + i) for i in range(min(count, self.workers - len(self._actors)))]
        self._actors.extend(added)
        return added

    def _new_actor(self, slot: int) -> Any:
        """An actor for ``slot`` (computing what this process computes: its oneDNN setting)."""
        name = f"{os.getpid()}-{id(self):x}-{slot}"  # this executor's slot: the temp folder of every actor in it
        return self._remote.remote(self.threads, parent_onednn(), self._actor_root or None, name)

    def _replace(self, actor: Any) -> Any:
        """A new actor in the slot of ``actor``, which died."""
        with contextlib.suppress(Exception):  # (dead already; a handle of a live one would keep its process)
            self._ray.kill(actor)
        slot = self._actors.index(actor)
        self._actors[slot] = self._new_actor(slot)
        return self._actors[slot]

    def _stop_actors(self, idle: bool = False) -> None:
        """Kills the actors (what they run stops with them); the next batch starts new ones. ``idle``
        actors first remove their temp folders (a killed actor left AutoGraph's files there, about five
        per run; an actor still running a task would remove it only after the task)."""
        ray = self._ray
        actors, self._actors = getattr(self, "_actors", []), []
        if not ray.is_initialized():  # (a call on an actor would start a new Ray instance)
            return
        if idle and actors:
            with contextlib.suppress(Exception):
                ray.wait([actor.remove_temp_dir.remote() for actor in actors], num_returns=len(actors), timeout=5)
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # an actor that is already gone
                pass

    def map(self, job: "Job | PreparedJob", items: Sequence[Any]) -> List[Any]:
        return list(self.imap(job, items))

    def imap(self, job: "Job | PreparedJob", items: Sequence[Any], chunk: int = 0) -> Iterator[Any]:
        items = list(items)
        ranges = chunk_ranges(len(items), self.workers, chunk or self.chunk)
        yield from in_order(self._chunks(prepare_job(job), items, ranges))

    def _chunks(self, prepared: PreparedJob, items: List[Any], ranges: List[Tuple[int, int]]
                ) -> Generator[Tuple[int, List[Any]], None, None]:
        """``(chunk index, its results)`` as chunks finish, each chunk on the next free actor.
        Ctrl-C, an error or an iterator closed before the end cancels the running tasks and stops
        the actors (the next batch starts new ones)."""
        ray = self._ray
        key, payload_ref = prepared.key, ray.put(prepared.payload)
        queue = list(range(len(ranges)))[::-1]
        idle = list(self._actors) + self._add_actors(len(ranges) - len(self._actors))  # (again after _stop_actors)
        running: Dict[Any, Any] = {}
        complete, deaths = not ranges, 0  # (an empty batch stops nothing)
        try:
            while queue or running:
                while queue and idle:
                    k, actor = queue.pop(), idle.pop()
                    a, b = ranges[k]
                    running[actor.run.remote(key, payload_ref, items[a:b], prepared.tensorflow)] = (k, actor)
                (ref,), _ = ray.wait(list(running), num_returns=1)
                k, actor = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    deaths += 1
                    self.restarts += 1
                    why = _death_reason(exc)
                    if deaths > self.max_restarts:
                        who = "a Ray worker died once" if deaths == 1 else f"Ray workers died {deaths} times"
                        raise ExecutorError(f"{who} while evaluating a batch: {why}") from exc
                    logger.warning("a Ray worker died; a new one takes its chunk (%s)", why)
                    queue.append(k)  # the next chunk to go out
                    idle.append(self._replace(actor))
                    continue
                idle.append(actor)
                complete = not queue and not running  # a reader that stops after the last chunk stops nothing
                yield k, result
        finally:
            if not complete:
                for ref in running:  # cancelled, a task is not retried when its actor is killed below (Ray
                    # printed a "(raylet) ... will be retried" line for each); Ray refuses force=True for actor tasks
                    with contextlib.suppress(Exception):  # a task that ended meanwhile
                        ray.cancel(ref)
                self._stop_actors()

    def close(self) -> None:
        """Stops the actors and a private instance; a Ctrl-C meanwhile is delivered when Ray has stopped."""
        self._close(idle=True)

    def _close(self, idle: bool) -> None:
        ray = self._ray
        with interrupts_deferred(enabled=self._owns) as interrupted:
            try:
                self._stop_actors(idle=idle)
                if self._owns:  # also after a start that failed half-way (Ray's processes may run)
                    self._owns = False
                    shutdown(ray)
            finally:
                self._remove_temp_dir()
                self._drop_token()
        if interrupted:
            deliver_interrupt(interrupted)

    def _drop_token(self) -> None:
        if self._own_token:
            drop_process_token()
            self._own_token = False

    def _remove_temp_dir(self) -> None:
        for folder in (self._actor_root, self._temp_dir):  # (the first is inside the second unless given)
            if folder:
                shutil.rmtree(folder, ignore_errors=True)  # a Ray helper still exiting may hold a file
        self._actor_root = self._temp_dir = ""
        release(self._temp_lock)
        self._temp_lock = None
