"""``tf.distribute`` strategies and the XLA switch, resolved from ``[run]`` strings.

``make_strategy`` names:

* ``auto``: ``MirroredStrategy`` over all GPUs when more than one is visible, else TF's
  default strategy (no distribution overhead, one device);
* ``one_device``: ``OneDeviceStrategy`` on the first GPU, or the CPU when there is none;
* ``mirrored``: ``MirroredStrategy`` over all GPUs; without GPUs, over all logical CPU devices
  (what tests use, after ``tf.config.set_logical_device_configuration``);
* ``multi_worker``: ``MultiWorkerMirroredStrategy``; needs the ``TF_CONFIG`` environment
  variable describing the cluster and this task.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Optional, Tuple, Union

import tensorflow as tf

logger = logging.getLogger(__name__)

STRATEGY_NAMES: Tuple[str, ...] = ("auto", "one_device", "mirrored", "multi_worker")
JIT_NAMES: Tuple[str, ...] = ("auto", "true", "false")
#: The task types of a ``multi_worker`` cluster: all of them train.
TASK_TYPES: Tuple[str, ...] = ("chief", "worker")

StrategyLike = Union[str, tf.distribute.Strategy]

_TF_CONFIG_HELP = (
    "set TF_CONFIG to a JSON cluster spec, e.g. "
    '\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\' '
    "(see https://www.tensorflow.org/guide/distributed_training#TF_CONFIG)"
)


class StrategyError(ValueError):
    """A strategy that cannot be built here: unknown name, or a missing/bad cluster spec."""


def make_strategy(name: StrategyLike = "auto") -> tf.distribute.Strategy:
    """The ``tf.distribute.Strategy`` called ``name`` (module docstring); a Strategy passes through.

    Raises:
        StrategyError: for an unknown name, or ``multi_worker`` without a valid ``TF_CONFIG``.
    """
    if isinstance(name, tf.distribute.Strategy):
        return name
    if name not in STRATEGY_NAMES:
        raise StrategyError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGY_NAMES)} "
                            "or a tf.distribute.Strategy.")
    if name == "multi_worker":  # before anything initialises TensorFlow's context (device listing does)
        return _multi_worker()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    raise AssertionError(name)  # every name is handled above


def check_cluster_spec(name: str) -> None:
    """Raises the :class:`StrategyError` now that ``make_strategy(name)`` would raise later for a
    missing or malformed ``TF_CONFIG`` (``multi_worker``), so that a search fails before its work."""
    if name == "multi_worker":
        _cluster_spec()


def _cluster_spec() -> dict:
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        raise StrategyError(f"strategy 'multi_worker' needs a cluster description: {_TF_CONFIG_HELP}.")
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({exc}); {_TF_CONFIG_HELP}.") from None
    if not isinstance(spec, dict) or "cluster" not in spec or "task" not in spec:
        raise StrategyError(f"TF_CONFIG must have 'cluster' and 'task' keys; {_TF_CONFIG_HELP}.")
    problem = _cluster_spec_problem(spec["cluster"], spec["task"])
    if problem:
        raise StrategyError(f"TF_CONFIG: {problem}; {_TF_CONFIG_HELP}.")
    return spec


def _same_endpoint(a: str, b: str) -> bool:
    """Whether two ``host:port`` addresses name one endpoint: the same port on hosts written alike (case aside)
    or resolving to a shared IP address (``localhost`` and ``127.0.0.1``); a host that does not resolve is
    compared as written. Only addresses of one port are resolved, so a usual cluster costs no lookup more
    than TensorFlow's own."""
    (host_a, port_a), (host_b, port_b) = (x.rsplit(":", 1) for x in (a, b))
    if port_a != port_b:
        return False
    if host_a.strip("[]").lower() == host_b.strip("[]").lower():
        return True
    return bool(_addresses_of(host_a) & _addresses_of(host_b))


def _addresses_of(host: str) -> set:
    import socket

    try:
        return {info[4][0] for info in socket.getaddrinfo(host.strip("[]"), None)}
    except (OSError, UnicodeError):  # (socket.gaierror is an OSError)
        return set()


def _cluster_spec_problem(cluster: object, task: object) -> str:
    """What is wrong with a parsed ``TF_CONFIG``'s ``cluster`` and ``task`` (empty when nothing):
    ``cluster`` maps task types to lists (or ``{index: address}`` dicts) of ``"host:port"``
    strings, ``task`` names one of them by type and index."""
    if not isinstance(cluster, dict) or not cluster:
        return f"'cluster' must map task types to lists of \"host:port\" addresses; got {cluster!r}"
    other = sorted(str(kind) for kind in cluster if kind not in TASK_TYPES)
    if other:  # 'ps' (ParameterServerStrategy) or 'evaluator' (a side-car): tasks that never join the collectives
        return (f"the cluster holds task type(s) {', '.join(map(repr, other))}; MultiWorkerMirroredStrategy takes "
                f"'chief' and 'worker' tasks only (every one trains)")
    indices = {}  # task type -> the task indices it has (a list: 0..n-1; a dict: its keys, sparse clusters)
    seen: dict = {}  # address -> the task that has it
    for kind, tasks in cluster.items():
        addresses = list(tasks.values()) if isinstance(tasks, dict) else tasks
        if not isinstance(addresses, list) or not addresses:
            return f"cluster[{kind!r}] must be a non-empty list of \"host:port\" addresses; got {tasks!r}"
        for slot, address in (tasks.items() if isinstance(tasks, dict) else enumerate(addresses)):
            if not isinstance(address, str) or ":" not in address or not address.rsplit(":", 1)[1].isdigit():
                return f"cluster[{kind!r}] holds {address!r}, not a \"host:port\" address"
            if not 1 <= int(address.rsplit(":", 1)[1]) <= 65535:
                return f"cluster[{kind!r}] holds {address!r}, whose port is not one of 1..65535"
            same = next((other for other in seen if _same_endpoint(address, other)), None)
            if same is not None:  # the task would wait for ever for a peer that is itself
                also = "also the address" if same == address else f"the same endpoint as {same!r}"
                return (f"cluster[{kind!r}] holds {address!r}, {also} of {seen[same]}; every task needs an "
                        f"address of its own")
            seen[address] = f"task {kind!r} {slot}"
        if isinstance(tasks, dict) and sorted(str(k) for k in tasks) != sorted(str(i) for i in range(len(tasks))):
            return (f"cluster[{kind!r}] as an {{index: address}} object must number its tasks 0..{len(tasks) - 1} "
                    f"(MultiWorkerMirroredStrategy needs every index); got {', '.join(map(str, tasks))}")
        indices[kind] = set(range(len(tasks)))
    if not isinstance(task, dict):
        return f"'task' must be {{\"type\": ..., \"index\": ...}}; got {task!r}"
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in TASK_TYPES:
        return (f"task type {kind!r} cannot run here: MultiWorkerMirroredStrategy takes 'chief' and 'worker' tasks "
                f"only (every one trains)")
    if kind not in indices:
        return f"task type {kind!r} is not in the cluster ({', '.join(map(repr, indices))})"
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        return f"task index must be a non-negative integer; got {index!r}"
    if kind in indices and index not in indices[kind]:
        return (f"task index {index} is out of range: the cluster has {len(indices[kind])} {kind!r} task(s) "
                f"(indices {', '.join(map(str, sorted(indices[kind])))})")
    return ""


def _multi_worker() -> tf.distribute.Strategy:
    """The strategy, once every task of ``TF_CONFIG`` has joined.

    TensorFlow waits for the other tasks inside C++ for as long as they take, holding the
    interpreter, so Python's Ctrl-C handler would never run: for the wait, Ctrl-C gets its default
    action and ends the process at once (nothing of a run is written before the strategy). Joining
    installs TensorFlow's own SIGTERM handler, which only records the signal: its coordination
    service publishes a preemption notice naming the task (:data:`PREEMPTION_KEY`). Python's handler
    is put back over TensorFlow's after the join, so SIGTERM then stops a multi-worker training like
    any other run; and a notice published during the wait is read back (:func:`stop_if_preempted`), so
    a SIGTERM then stops the task that got it right after the join instead of being lost, and the
    other tasks with one line. Off the main thread no handler can be put back: TensorFlow's keeps
    SIGTERM for the rest of the process, which the warning says.
    """
    spec = _cluster_spec()
    tasks = {kind: t if isinstance(t, dict) else dict(enumerate(t)) for kind, t in spec["cluster"].items()}
    kind, index = spec["task"]["type"], spec["task"].get("index", 0)
    others = [a for k, addresses in tasks.items() for i, a in addresses.items() if (k, str(i)) != (kind, str(index))]
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    if others:
        logger.warning("multi_worker: waiting for the other %d task(s) of TF_CONFIG (%s) to start; nothing "
                       "happens until all have joined (%s)", len(others), ", ".join(others),
                       "Ctrl-C stops; a SIGTERM meanwhile stops it once they have" if main else
                       "off the main thread: TensorFlow's SIGTERM handler stays in place in this process, so "
                       "SIGTERM will not stop it; use SIGINT or SIGKILL")
    interrupt = signal.signal(signal.SIGINT, signal.SIG_DFL) if main else None
    term = signal.getsignal(signal.SIGTERM) if main else None
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        if main:  # None: a handler not set from Python, which it cannot put back; the default then
            signal.signal(signal.SIGINT, signal.SIG_DFL if interrupt is None else interrupt)
            signal.signal(signal.SIGTERM, signal.SIG_DFL if term is None else term)
    if others:
        stop_if_preempted(f"/job:{kind}/task:{index}", preemption_notice(), main)
    return strategy


#: The key of the coordination service's preemption notice: TensorFlow's SIGTERM handler, in place
#: while a task joins its cluster, makes the service store the name of the task that got the signal.
PREEMPTION_KEY = "TF_DEFAULT_PREEMPTION_NOTICE_KEY"
#: How long to wait for that notice after the join: TensorFlow looks at the recorded signal once a second.
PREEMPTION_WAIT_MS = 1500


def preemption_notice(wait_ms: int = PREEMPTION_WAIT_MS) -> str:
    """The task the cluster's preemption notice names (``/job:worker/task:0``): the first task that got a
    SIGTERM while TensorFlow's handler was in place. ``""`` when there is no notice within ``wait_ms`` (the
    usual case, which costs the whole wait) or nothing to read (no coordination service)."""
    from tensorflow.python.eager import context  # the config key-value store has no public accessor

    try:
        return str(context.context().get_config_key_value(PREEMPTION_KEY, int(wait_ms)))
    except tf.errors.OpError:
        return ""


def stop_if_preempted(task: str, notice: str, main: bool) -> None:
    """Acts on the preemption notice read after ``task`` joined its cluster.

    No notice: nothing. A notice naming ``task``, on the main thread: the SIGTERM is sent to this process
    again, now that Python's handler is back (``terminated:``, 143 on the command line). Otherwise
    :class:`ClusterError`: a task that got a SIGTERM stops, so the others cannot train. TensorFlow keeps
    the first task's notice only, so a task that got a SIGTERM after another one is told it this way.
    """
    if not notice:
        return
    if notice == task and main:
        import signal

        logger.warning("multi_worker: a SIGTERM arrived while this task waited for the cluster; it stops now")
        os.kill(os.getpid(), signal.SIGTERM)
        return
    what = ("this task got a SIGTERM while the cluster was joining, so it stops" if notice == task else
            f"task {notice} got a SIGTERM while the cluster was joining, so this task stops too (TensorFlow "
            f"records the first such task only)")
    raise ClusterError(f"multi_worker: {what}; start every task again with the same command")


class ClusterError(RuntimeError):
    """Another task of a multi-worker cluster stopped or cannot be reached during training."""


#: What TensorFlow raises in the collective ops of a worker whose peer has gone.
PEER_LOST = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
             tf.errors.DeadlineExceededError)
#: ... and words of its message that name the collectives or the cluster (not a data read or a checkpoint)
_PEER_WORDS = ("collective", "heartbeat", "coordination service")
#: the op and device TensorFlow puts before an eager op's message (``/job:`` appears there for every op)
_OP_PREFIX = re.compile(r"^\{\{function_node [^}]*\}\}\s*")


def peer_lost(exc: BaseException) -> Optional[ClusterError]:
    """The one-line error of a collective op that failed because a peer of the cluster has gone, or
    ``None`` where ``exc`` is something else (another error type, a cluster of one task, a message that
    names neither the collectives nor the cluster: a failed data read is reported as itself)."""
    text = _OP_PREFIX.sub("", str(getattr(exc, "message", "") or "").strip())
    if not isinstance(exc, PEER_LOST) or not any(word in text.lower() for word in _PEER_WORDS):
        return None
    try:
        spec = _cluster_spec()
    except StrategyError:
        return None
    if sum(len(tasks) for tasks in spec["cluster"].values()) < 2:
        return None
    return ClusterError(f"multi_worker: another task of the cluster stopped or cannot be reached, so this one "
                        f"stops too ({type(exc).__name__}: {text.splitlines()[0][:300]}); start every task again "
                        f"with the same command")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)


def resolve_jit_compile(value: Union[str, bool] = "auto", auto: Optional[bool] = None) -> bool:
    """XLA on or off: ``"auto"`` is on only when a GPU is visible (XLA is slower on CPU, measured
    train-step figures in docs/PERFORMANCE.md from ``tools/bench.py train-step``; on GPU it is the
    usual choice, not yet measured here), or ``auto`` where the caller knows better:

    * the weight-sharing supernets (RelativeNAS, SLNAS, NAG's) pass ``auto=False``: compiling the
      train step of the smallest lite supernet with XLA took 3 min 45 s on one CPU thread, every
      process (each worker) compiles its own, and their hundreds of ``tf.switch_case`` per step
      become XLA conditionals, which XLA on a GPU runs by copying each branch index to the host
      first (not measured here: no GPU);
    * trainings of one candidate each (the training oracle, RS-NAG) pass ``auto=False``: every
      architecture would be compiled anew for a training of a few epochs.

    ``jit_compile = true`` still turns XLA on for them.

    Raises:
        ValueError: for anything but a bool or ``auto``/``true``/``false``.
    """
    if isinstance(value, bool):
        return value
    if value == "auto":
        return bool(tf.config.list_physical_devices("GPU")) if auto is None else bool(auto)
    if value in ("true", "false"):
        return value == "true"
    raise ValueError(f"jit_compile must be a bool or one of {', '.join(JIT_NAMES)}. Received: jit_compile={value!r}")
