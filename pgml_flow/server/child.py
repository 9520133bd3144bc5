"""Run long pure-Python work (a fit) in a forked child that the backend waits on.

PostgreSQL acts on a cancel (``pg_cancel_backend``, ``statement_timeout``) or a shutdown
(SIGTERM from ``pg_ctl stop -m fast``, ``pg_terminate_backend``) only where the backend
reaches ``CHECK_FOR_INTERRUPTS``; a fit running in PL/Python never does, so it used to
ignore all three until it finished.  :func:`run` forks instead.  The child computes,
pickles its result into a pipe and ends with ``os._exit`` (no atexit, no PostgreSQL exit
hooks: it is a copy of the backend and must never run PostgreSQL code).  The backend
reads the pipe with a short timeout and, between reads, executes a prepared ``SELECT 1``,
whose executor checks for interrupts:

* cancel or statement timeout: that SPI call raises ``QueryCanceled``; the backend
  SIGKILLs and reaps the child and re-raises, so the statement fails with PostgreSQL's
  own error and its transaction (which has written no model yet) rolls back;
* fast shutdown or terminate: the backend exits FATAL at its next check.  The child
  dies at once too: PostgreSQL signals the backend's process group, which the child
  shares with its SIGTERM/SIGINT/SIGQUIT reset to the default action, and
  ``PR_SET_PDEATHSIG`` kills it should the backend die any other way.

Early results: the work may hand a value to the backend before it ends
(:func:`send_early`); ``run``'s ``early`` callback runs it there at once while the child
goes on (``pgml.train`` stores a model's files while the child compiles its native form,
so the two cores overlap them).  Were the child to fail after that, the statement fails
and rolls back what the callback wrote.

OpenMP: GNU libgomp does not survive ``fork`` once the parent ran a multi-threaded
parallel region (the child waits forever on the parent's worker threads, which it does
not have).  :func:`single_threaded_backend` therefore makes every OpenMP runtime in the
backend use one thread (``OMP_NUM_THREADS=1`` before they load, ``omp_set_num_threads``
for those already loaded), so model loading and predictions there never start a thread
pool; the child puts back the thread count the libraries would have used by default, and
:mod:`pgml_flow.engine.parallel` then applies ``pgml.train_threads`` (and forks a search's
single-threaded workers from the child, before any fit ran a team there).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import os
import pickle
import select
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")

#: how often (seconds) the waiting backend checks for interrupts
POLL_SECONDS = 0.05
#: the cheapest statement whose execution reaches CHECK_FOR_INTERRUPTS (a Result node)
_PROBE = "SELECT 1"
_HEADER = struct.Struct("<Q")
#: the length bit that marks an early frame (send_early), read before the final one
_EARLY = 1 << 63
_CHUNK = 1 << 20
_PR_SET_PDEATHSIG = 1
#: module names whose import loads an OpenMP runtime
_OPENMP_MODULES = ("sklearn", "xgboost", "lightgbm", "catboost")
_OPENMP_LIBRARIES = ("libgomp", "libiomp", "libomp")
#: the child's signal dispositions: die at once on a cancel or shutdown signal; ignore
#: what PostgreSQL sends a backend alone (reload, latch wake-ups, procsignals, timeouts)
_DEFAULT_SIGNALS = ("SIGINT", "SIGTERM", "SIGQUIT", "SIGFPE", "SIGCHLD", "SIGURG")
_IGNORED_SIGNALS = ("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGPIPE")


class ChildTraceback(Exception):
    """The traceback of an exception raised in the child (the ``__cause__`` of its copy)."""


class _Early:
    #: where send_early delivers a value (None: outside run, or run without ``early``)
    deliver: Callable[[Any], None] | None = None
    #: children whose whole result was read, left to :func:`reap` (``run(wait=False)``)
    unreaped: list[int] = []


def reap() -> None:
    """Wait for the children :func:`run` left (``wait=False``): each wrote its result and
    is in ``os._exit``, so this does not block for long; meanwhile the caller used that
    result (tearing down a copy of the backend takes milliseconds)."""
    while _Early.unreaped:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(_Early.unreaped.pop(), 0)


def send_early(value: Any) -> bool:
    """From the work of :func:`run`: hand ``value`` (picklable) to ``run``'s ``early``
    callback in the backend now, and go on.  False (nothing done): there is no callback."""
    if _Early.deliver is None:
        return False
    _Early.deliver(value)
    return True


# -- threads ---------------------------------------------------------------------------------
class _Threads:
    prepared = False
    #: OMP_NUM_THREADS as the server set it (None: unset)
    original: str | None = None
    #: the OpenMP runtimes loaded in this process, found when sys.modules had this many entries
    libraries: list[Any] = []
    modules = -1


def single_threaded_backend() -> None:
    """Make this backend's OpenMP runtimes use one thread (idempotent; see the module doc)."""
    if _Threads.prepared:
        return
    _Threads.prepared = True
    _Threads.original = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    for library in _openmp_libraries():
        library.omp_set_num_threads(ctypes.c_int(1))


def _openmp_libraries() -> list[Any]:
    """The OpenMP runtimes loaded in this process (looked up again after new imports)."""
    if len(sys.modules) != _Threads.modules:
        _Threads.modules = len(sys.modules)
        _Threads.libraries = []
        if any(name in sys.modules for name in _OPENMP_MODULES):
            _Threads.libraries = _load_openmp_libraries()
    return _Threads.libraries


def _load_openmp_libraries() -> list[Any]:
    with open("/proc/self/maps") as maps:
        lines = [line for line in maps.read().splitlines() if "omp" in line]
    paths = {fields[5] for fields in (line.split(maxsplit=5) for line in lines)
             if len(fields) == 6 and ".so" in fields[5]
             and os.path.basename(fields[5]).startswith(_OPENMP_LIBRARIES)}
    libraries = []
    for path in sorted(paths):
        with contextlib.suppress(OSError):
            library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
            if hasattr(library, "omp_set_num_threads"):
                libraries.append(library)
    return libraries


def _restore_threads_in_child(libraries: list[Any]) -> None:
    """Give the child the thread count the libraries would have used by default."""
    if not _Threads.prepared:
        return
    if _Threads.original is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = _Threads.original
    threads = _default_threads(_Threads.original)
    for library in libraries:
        library.omp_set_num_threads(ctypes.c_int(threads))


def _default_threads(setting: str | None) -> int:
    """What libgomp starts with: OMP_NUM_THREADS's first level, else the usable CPUs."""
    with contextlib.suppress(ValueError):
        if setting:
            return max(1, int(setting.split(",")[0]))
    return len(os.sched_getaffinity(0))


# -- the backend's side ----------------------------------------------------------------------
_probe_plan: list[Any] = []


def _check_interrupts(plpy: Any) -> None:
    if not _probe_plan:
        _probe_plan.append(plpy.prepare(_PROBE))
    plpy.execute(_probe_plan[0])


def run(plpy: Any, work: Callable[[], T], *, what: str,
        early: Callable[[Any], None] | None = None, wait: bool = True) -> T:
    """``work()`` in a forked child; returns its (picklable) result or raises its error.

    Interrupts of the backend stop the child within :data:`POLL_SECONDS` and raise
    PostgreSQL's error (see the module doc).  ``what`` names the work in messages.
    ``early(value)`` runs in the backend for each :func:`send_early` of the work, in order,
    before ``run`` returns.  ``wait=False``: return once the result is read, leaving the
    ending child to :func:`reap`, which the caller then calls.
    """
    reap()  # any a failed statement left

    def check() -> None:
        _check_interrupts(plpy)

    check()
    libraries = _openmp_libraries() if _Threads.prepared else []
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    gc.freeze()  # the child's collector then leaves the inherited objects (and pages) alone
    try:
        pid = os.fork()
    except OSError as exc:  # e.g. ENOMEM under vm.overcommit_memory=2, or a process limit
        gc.unfreeze()
        os.close(read_fd)
        os.close(write_fd)
        plpy.warning(f"{what}: cannot start a training process ({exc}); training in the "
                     "backend, where a cancel, statement_timeout or shutdown takes effect only "
                     "when the fit ends")
        _Early.deliver = early
        try:
            return work()
        finally:
            _Early.deliver = None
    if pid == 0:
        _child(work, read_fd, write_fd, parent, libraries, early is not None)
    gc.unfreeze()
    os.close(write_fd)
    try:
        payload, status = _collect(pid, read_fd, check, early, wait)
    except BaseException:
        _kill(pid)
        raise
    finally:
        os.close(read_fd)
    try:
        return _result(payload, status, what, check)
    except BaseException:
        reap()  # an error ends the statement: reap now, the caller will not
        raise


def _collect(pid: int, read_fd: int, check: Callable[[], None],
             early: Callable[[Any], None] | None = None,
             wait: bool = True) -> tuple[bytes, int]:
    """Read the child's framed payload while checking for interrupts, then reap it;
    early frames go to ``early`` as they come."""
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    buffer = bytearray()
    status: int | None = None
    next_check = time.monotonic() + POLL_SECONDS
    while not _complete(_deliver_early(buffer, early)):
        if poller.poll(int(POLL_SECONDS * 1000)):
            chunk = os.read(read_fd, _CHUNK)
            if not chunk:
                break
            buffer += chunk
        if time.monotonic() >= next_check:
            check()
            next_check = time.monotonic() + POLL_SECONDS
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:  # died, but a process it started may hold the pipe open: drain it
                status = code
                buffer += _drain(read_fd)
                break
    _deliver_early(buffer, early)  # those the child wrote before it ended
    if status is None and not wait and _complete(buffer):
        _Early.unreaped.append(pid)  # it ends right after writing: reap() waits for it
        return bytes(buffer), 0
    while status is None:  # the child ends right after writing; reap it
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status = code
            break
        time.sleep(0.001)
        if time.monotonic() >= next_check:
            check()
            next_check = time.monotonic() + POLL_SECONDS
    return bytes(buffer), status


def _complete(buffer: bytes | bytearray) -> bool:
    """Does ``buffer`` hold a whole frame (length header + payload)?"""
    if len(buffer) < _HEADER.size:
        return False
    return len(buffer) >= _HEADER.size + (_HEADER.unpack_from(buffer)[0] & ~_EARLY)


def _deliver_early(buffer: bytearray, early: Callable[[Any], None] | None) -> bytearray:
    """Take the whole early frames off the front of ``buffer`` and run ``early`` on each."""
    while _complete(buffer) and _HEADER.unpack_from(buffer)[0] & _EARLY:
        end = _HEADER.size + (_HEADER.unpack_from(buffer)[0] & ~_EARLY)
        value = pickle.loads(buffer[_HEADER.size:end])
        del buffer[:end]
        if early is not None:
            early(value)
    return buffer


def _drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = bytearray()
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, _CHUNK):
            data += chunk
    return bytes(data)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _result(payload: bytes, status: int, what: str, check: Callable[[], None]) -> Any:
    from pgml_flow.engine.errors import TrainingFailed

    if _complete(payload):
        kind, *rest = pickle.loads(payload[_HEADER.size:])
        if kind == "ok":
            return rest[0]
        _raise_child_error(*rest)
    # No result: the child was killed.  A cancel or shutdown signal reaches the backend
    # with the child's, so let PostgreSQL report it first if that is what happened.
    for _ in range(4):
        check()
        time.sleep(POLL_SECONDS / 2)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        how = f"was killed by signal {signal.Signals(number).name}"
        if number == signal.SIGKILL:
            how += " (out of memory? see the kernel log)"
    else:
        how = f"exited with code {os.WEXITSTATUS(status)} without a result"
    raise TrainingFailed(f"{what}: the training process {how}")


def _raise_child_error(exc_pickle: bytes | None, module: str, qualname: str, message: str,
                       text: str) -> NoReturn:
    """Raise the child's exception again: same class and message, its traceback as cause."""
    from pgml_flow.engine.errors import TrainingFailed

    cause = ChildTraceback(text)
    exc: Any = None
    if exc_pickle is not None:
        with contextlib.suppress(Exception):
            exc = pickle.loads(exc_pickle)
    if not isinstance(exc, BaseException) or str(exc) != message:
        exc = None
        cls: Any = None
        with contextlib.suppress(Exception):
            cls = importlib.import_module(module)
            for part in qualname.split("."):
                cls = getattr(cls, part)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            with contextlib.suppress(Exception):
                exc = cls(message)
        if exc is None or str(exc) != message:
            exc = TrainingFailed(f"{qualname}: {message}")
    raise exc from cause


# -- the child's side ------------------------------------------------------------------------
def _child(
    work: Callable[[], Any], read_fd: int, write_fd: int, parent: int, libraries: list[Any],
    early: bool = False,
) -> NoReturn:
    code = 1
    try:
        _reset_signals()
        _die_with(parent)
        os.close(read_fd)
        _restore_threads_in_child(libraries)
        with os.fdopen(write_fd, "wb") as out:
            if early:
                _Early.deliver = lambda value: _write_frame(
                    out, pickle.dumps(value, protocol=5), _EARLY)
            try:
                payload = pickle.dumps(("ok", work()), protocol=5)
            except BaseException as exc:  # every error goes back to the backend
                payload = _error_payload(exc)
            _write_frame(out, payload)
        code = 0
    finally:
        os._exit(code)


def _write_frame(out: Any, payload: bytes, flag: int = 0) -> None:
    out.write(_HEADER.pack(len(payload) | flag))
    out.write(payload)
    out.flush()


def _die_with(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the backend died before prctl took effect
        os._exit(1)


def _reset_signals() -> None:
    for name in _DEFAULT_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    for name in _IGNORED_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _error_payload(exc: BaseException) -> bytes:
    text = "".join(traceback.format_exception(exc))
    exc_pickle: bytes | None = None
    try:
        candidate = pickle.dumps(exc, protocol=5)
        pickle.loads(candidate)
    except Exception:  # e.g. an exception class whose __init__ takes other arguments
        pass
    else:
        exc_pickle = candidate
    cls = type(exc)
    return pickle.dumps(("error", exc_pickle, cls.__module__, cls.__qualname__, str(exc), text),
                        protocol=5)
