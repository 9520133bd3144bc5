"""How many cores one ``pgml.train`` uses: library threads per fit, and search fits in parallel.

Why: a search's fits (every candidate on every fold) are independent, and scikit-learn's
``GridSearchCV(n_jobs=-1)`` runs them on every core in processes of their own.  Inside
PostgreSQL, joblib/loky cannot start a Python (a backend is not one), and the training
child (:mod:`pgml_flow.server.child`) used to run them one after another, each with the
library's own thread pool: OpenMP teams of short-lived parallel regions fight the other
backends for the cores and wait for each other (a 6x4 XGBoost grid on ``digits`` took 313 s
against 20 s outside).  Here the training child forks worker processes instead; each runs
whole fits with one thread, which is how such small fits use cores best.

Bounds (read in the backend from superuser-only settings, ``pgml.max_parallel_fits`` and
``pgml.train_threads``, see docs/operations.md, and never above the usable cores): a tenant
cannot make one backend take the whole server.

What is computed once and shared: the folds (by the caller) and each fold's rows; tasks
run fold by fold, so a process slices a fold's rows once for all the candidates it fits
on it, and the workers read the training child's arrays through ``fork`` (copy on write),
never through pickling.

Safety of ``fork``: the workers are forked from the training child (never from the
backend) before it runs any fit; they reset the signals a cancel or shutdown uses, die
with the training child (``PR_SET_PDEATHSIG``: the backend SIGKILLs that child on a
cancel) and end with ``os._exit``.  A worker runs its OpenMP teams with one thread: a team
of one never touches the thread pool a forked process does not have.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import pickle
import select
import signal
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from pgml_flow.engine.errors import TrainingFailed

#: default of pgml.max_parallel_fits (as PostgreSQL's max_parallel_workers_per_gather)
DEFAULT_PARALLEL_FITS = 2
#: training values (rows x features) under which a fit runs one thread when
#: pgml.train_threads is 0: OpenMP waits passively in the database (engine/__init__.py),
#: so a team's wake-ups cost more than a small fit gains from a second thread (XGBoost on
#: digits, 86,000 values: 0.29 s with one thread, 0.40 s with two)
SMALL_FIT_VALUES = 1_000_000
_TASK = struct.Struct("<I")
_HEADER = struct.Struct("<Q")
_CHUNK = 1 << 16
_PR_SET_PDEATHSIG = 1
_OPENMP_LIBRARIES = ("libgomp", "libiomp", "libomp")


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, as OpenMP counts them)."""
    return max(1, len(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class Limits:
    """The bounds one training works within (from the server's settings)."""

    #: search fits run at once, each in a process of its own (1: one after another)
    fits: int = DEFAULT_PARALLEL_FITS
    #: library threads of one fit outside a search's workers (0: one per usable core, one
    #: for a small fit)
    threads: int = 0

    def fit_threads(self, values: int | None = None) -> int:
        """Threads of a fit on ``values`` training values (None: a large fit)."""
        cores = usable_cores()
        if self.threads > 0:
            return min(self.threads, cores)
        return 1 if values is not None and values < SMALL_FIT_VALUES else cores

    def workers(self, tasks: int) -> int:
        return max(1, min(self.fits, usable_cores(), tasks))

    @classmethod
    def from_settings(cls, fits: Any, threads: Any) -> Limits:
        """From ``current_setting(..., true)`` texts (None: the setting is not defined)."""

        def number(text: Any, default: int) -> int:
            try:
                return int(text)
            except (TypeError, ValueError):
                return default

        return cls(max(1, number(fits, DEFAULT_PARALLEL_FITS)), max(0, number(threads, 0)))


class _State:
    #: one fit at a time unless :func:`configure` says otherwise: only the training child
    #: (``pgml_flow.server.api``) forks workers, never a process that may have run OpenMP
    #: teams already (a test run, an application calling the engine)
    limits = Limits(fits=1)


def configure(limits: Limits, values: int | None = None) -> None:
    """Apply ``limits`` in this process (the training child) to fits of ``values`` values."""
    _State.limits = limits
    set_threads(limits.fit_threads(values))


def current() -> Limits:
    return _State.limits


def set_threads(count: int) -> None:
    """Make the OpenMP runtimes of this process (and those loaded later) use ``count``."""
    os.environ["OMP_NUM_THREADS"] = str(count)
    for library in openmp_libraries():
        library.omp_set_num_threads(ctypes.c_int(count))


class _Runtimes:
    #: sys.modules' size when ``libraries`` were looked up (-1: never)
    modules = -1
    libraries: list[Any] = []


def openmp_libraries() -> list[Any]:
    """The OpenMP runtimes loaded in this process, looked up again only after new imports.

    Why cached: reading ``/proc/self/maps`` of a backend (1,400 mappings) took about 3 ms
    of every training.  The backend looks them up before it forks the training child
    (``pgml_flow.server.api``), which inherits the answer.
    """
    if len(sys.modules) != _Runtimes.modules:
        _Runtimes.libraries = _openmp_libraries()
        _Runtimes.modules = len(sys.modules)
    return _Runtimes.libraries


def _openmp_libraries() -> list[Any]:
    with open("/proc/self/maps") as maps:
        fields = [line.split(maxsplit=5) for line in maps if "omp" in line]
    paths = {f[5].strip() for f in fields if len(f) == 6 and ".so" in f[5]
             and os.path.basename(f[5].strip()).startswith(_OPENMP_LIBRARIES)}
    libraries = []
    for path in sorted(paths):
        with contextlib.suppress(OSError):
            library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
            if hasattr(library, "omp_set_num_threads"):
                libraries.append(library)
    return libraries


# -- cross-validation --------------------------------------------------------------------------
def cross_validate(
    fit_and_score: Callable[[dict[str, Any], np.ndarray, Any, np.ndarray, Any], Sequence[float]],
    candidates: Sequence[dict[str, Any]],
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    x: np.ndarray,
    y: np.ndarray | None,
    limits: Limits | None = None,
) -> np.ndarray:
    """What ``fit_and_score`` returns for every candidate on every fold: ``[candidate, fold]``.

    ``fit_and_score(params, x_train, y_train, x_valid, y_valid)`` fits one candidate and
    returns a few numbers (its validation score, seconds...), the same count each time.
    Fits run in up to ``limits.workers`` processes (see the module doc); the results do not
    depend on how many, and a fit's error is raised here as it was raised.
    """
    limits = limits or current()
    n_candidates = len(candidates)
    n_tasks = n_candidates * len(folds)
    cached: dict[int, tuple[np.ndarray, Any, np.ndarray, Any]] = {}

    def task(index: int) -> tuple[float, ...]:
        fold, candidate = divmod(index, n_candidates)  # fold by fold: slice each fold once
        if fold not in cached:
            cached.clear()
            train, valid = folds[fold]
            cached[fold] = (x[train], None if y is None else y[train],
                            x[valid], None if y is None else y[valid])
        return tuple(float(v) for v in fit_and_score(candidates[candidate], *cached[fold]))

    workers = limits.workers(n_tasks)
    if workers <= 1 or n_tasks * _TASK.size > _pipe_capacity():
        results = [task(i) for i in range(n_tasks)]
    else:
        results = run_tasks(task, n_tasks, workers)
    table = np.asarray(results, dtype=np.float64).reshape(len(folds), n_candidates, -1)
    return table.transpose(1, 0, 2)


def _pipe_capacity() -> int:
    return 65536  # Linux's default pipe buffer: all the task numbers are written at once


def run_tasks(task: Callable[[int], Any], n_tasks: int, workers: int) -> list[Any]:
    """``[task(0), ..., task(n_tasks - 1)]`` computed by ``workers`` forked processes.

    The task numbers go into one pipe that every worker reads 4 bytes at a time (reads of
    a pipe are atomic), so a worker that finishes early takes the next task; each worker
    sends its results back on a pipe of its own.  The first error stops the others and is
    raised here; a worker that dies without a result raises :class:`TrainingFailed`.
    """
    task_read, task_write = os.pipe()
    try:
        os.write(task_write, b"".join(_TASK.pack(i) for i in range(n_tasks)))
    finally:
        os.close(task_write)
    coordinator = os.getpid()
    pids: dict[int, int] = {}  # result pipe -> worker pid
    gc.freeze()
    try:
        for _ in range(workers):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                for fd in pids:
                    os.close(fd)
                os.close(read_fd)
                _worker(task, task_read, write_fd, coordinator)
            os.close(write_fd)
            pids[read_fd] = pid
    except BaseException:
        _stop(pids)
        raise
    finally:
        gc.unfreeze()
        os.close(task_read)
    try:
        return _gather(pids, n_tasks)
    finally:
        _stop(pids)


def _worker(task: Callable[[int], Any], task_read: int, write_fd: int,
            coordinator: int) -> NoReturn:
    code = 1
    try:
        for name in ("SIGINT", "SIGTERM", "SIGQUIT"):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != coordinator:  # the training child died before prctl took effect
            os._exit(1)
        set_threads(1)
        with os.fdopen(write_fd, "wb", buffering=0) as out:
            while len(raw := os.read(task_read, _TASK.size)) == _TASK.size:
                (index,) = _TASK.unpack(raw)
                try:
                    frame = pickle.dumps(("ok", index, task(index)), protocol=5)
                except BaseException as exc:  # sent back; the coordinator stops the others
                    frame = _error_frame(index, exc)
                    out.write(_HEADER.pack(len(frame)) + frame)
                    break
                out.write(_HEADER.pack(len(frame)) + frame)
        code = 0
    finally:
        os._exit(code)


def _error_frame(index: int, exc: BaseException) -> bytes:
    try:
        payload = pickle.dumps(exc, protocol=5)
        pickle.loads(payload)
    except Exception:  # an exception class that does not round-trip: keep its message
        payload = None
    return pickle.dumps(("error", index, (payload, f"{type(exc).__name__}: {exc}")), protocol=5)


def _gather(pids: dict[int, int], n_tasks: int) -> list[Any]:
    results: list[Any] = [None] * n_tasks
    done = 0
    buffers = {fd: bytearray() for fd in pids}
    poller = select.poll()
    for fd in pids:
        poller.register(fd, select.POLLIN)
    open_fds = set(pids)
    while done < n_tasks and open_fds:
        for fd, _ in poller.poll():
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
                continue
            buffer = buffers[fd]
            buffer += chunk
            while len(buffer) >= _HEADER.size and len(buffer) >= _HEADER.size + (
                    size := _HEADER.unpack_from(buffer)[0]):
                kind, index, value = pickle.loads(bytes(buffer[_HEADER.size:_HEADER.size + size]))
                del buffer[:_HEADER.size + size]
                if kind == "error":
                    _raise(*value)
                results[index] = value
                done += 1
    if done < n_tasks:
        how = "; ".join(s for s in _stop(pids) if s) or "ended early"
        raise TrainingFailed(f"search: a fitting process died without its results ({how}); "
                             "out of memory? lower pgml.max_parallel_fits or see the kernel log")
    return results


def _raise(payload: bytes | None, text: str) -> NoReturn:
    exc: Any = None
    if payload is not None:
        with contextlib.suppress(Exception):
            exc = pickle.loads(payload)
    if not isinstance(exc, BaseException):
        exc = TrainingFailed(text)
    raise exc


def _stop(pids: dict[int, int]) -> list[str]:
    """Kill and reap every worker (they have nothing left to do), close their pipes; how
    those that had already ended ended (a signal or an exit code, "" for a clean exit)."""
    statuses = []
    for fd, pid in pids.items():
        with contextlib.suppress(ChildProcessError):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses.append(_how(status))
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        with contextlib.suppress(OSError):
            os.close(fd)
    pids.clear()
    return statuses


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}" if os.WEXITSTATUS(status) else ""
