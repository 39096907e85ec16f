"""How a dataset run is scheduled: in this process or on Dask, and how many numba / BLAS threads each
task gets (workers x threads <= cores, so that tasks do not oversubscribe the machine)."""

from __future__ import annotations

import contextlib
import numbers
import os
from typing import Any, Callable, Iterator

from ..errors import ArgumentError

__all__ = ["available_cores", "pinned_threads", "local_cluster_size", "drive", "positive_int", "host_of",
           "describe_scheduler"]


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ArgumentError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """numba's threads (of the calling thread) and the BLAS pool (threadpoolctl, when installed)
    set to ``threads`` inside the block, restored afterwards. None: leave both as they are."""
    if threads is None:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            limits: Any = contextlib.nullcontext()
        else:
            limits = threadpool_limits(limits=threads, user_api="blas")
        with limits:
            yield
    finally:
        numba.set_num_threads(before)


def local_cluster_size(n_workers: int | None, threads: int | None) -> tuple[int, int]:
    """(worker processes, threads per task) of ``scheduler="local"``: one task slot per worker,
    ``threads`` numba/BLAS threads per task (default 1), and as many workers as the available
    cores hold (workers x threads <= cores, at least one worker)."""
    threads = 1 if threads is None else threads
    workers = max(1, available_cores() // threads) if n_workers is None else positive_int(n_workers, "n_workers")
    return workers, threads


def host_of(address: str) -> str:
    return address.split("://")[-1].rsplit(":", 1)[0]


def describe_scheduler(scheduler: Any) -> str:
    if scheduler is None or isinstance(scheduler, str):
        return "in-process" if scheduler is None else scheduler
    return f"client of {getattr(scheduler, 'scheduler', None) and scheduler.scheduler.address}"


def drive(scheduler: Any, n_workers: int | None, threads: int | None, plan: Any, todo: list[int],
          compute: Callable) -> Iterator[tuple[int, dict, dict]]:
    """(chunk index, arrays, manifest entry) for every chunk of ``todo``, as each finishes.

    ``compute`` is :func:`refattr.dataset.run.compute_chunk` (passed in, so that this module does not
    import the one that drives it); ``plan`` holds the network, the method, its options, the block
    size, the Captum peer and ``chunk_data(k)``."""
    if threads is not None:
        threads = positive_int(threads, "threads")
    if n_workers is not None and scheduler != "local":
        raise ArgumentError(f"n_workers: only for scheduler='local' (got scheduler={describe_scheduler(scheduler)!r})")
    if scheduler is None:
        threads = available_cores() if threads is None else threads
        for k in todo:
            arrays, entry = compute(plan.net, plan.method, plan.chunk_data(k), plan.options, block=plan.block,
                                          threads=threads, worker=f"in-process (pid {os.getpid()})", peer=plan.captum)
            yield k, arrays, entry
        return
    yield from _drive_dask(scheduler, n_workers, threads, plan, todo, compute)


def _drive_dask(scheduler, n_workers, threads, plan, todo, compute):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ArgumentError("scheduler: Dask is not installed; pip install 'refattr[dask]' (dask[distributed]), or "
                            "pass scheduler=None to compute in this process") from None
    with contextlib.ExitStack() as stack:
        if scheduler == "local":
            workers, threads = local_cluster_size(n_workers, threads)
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       host="127.0.0.1", dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        elif isinstance(scheduler, str):
            client = stack.enter_context(Client(scheduler))
        elif isinstance(scheduler, Client):
            client = scheduler
        else:
            raise ArgumentError(f"scheduler: expected None, 'local', a scheduler address ('tcp://host:port') or a "
                                f"dask.distributed.Client, got {type(scheduler).__name__}")
        info = client.scheduler_info(n_workers=-1)["workers"]
        if threads is None:
            slots: dict[str, int] = {}
            for address, worker in info.items():
                slots[host_of(address)] = slots.get(host_of(address), 0) + worker["nthreads"]
            cores = client.run(available_cores)
            threads = {host: max(1, min(cores[a] for a in cores if host_of(a) == host) // n) for host, n in slots.items()}
        net = client.scatter(plan.net, broadcast=True, hash=False)
        peer = None if plan.captum is None else client.scatter(plan.captum, broadcast=True, hash=False)
        in_flight = max(2, 2 * sum(w["nthreads"] for w in info.values()))
        queue = list(todo)

        def submit(k):
            return client.submit(compute, net, plan.method, plan.chunk_data(k), plan.options, block=plan.block,
                                 threads=threads, worker=None, peer=peer, pure=False,
                                 key=f"refattr-chunk-{k}-{os.urandom(4).hex()}")

        futures = {}
        for k in queue[:in_flight]:
            futures[submit(k)] = k
        queue = queue[in_flight:]
        pending = as_completed(list(futures))
        for future in pending:
            k = futures.pop(future)
            arrays, entry = future.result()
            future.release()
            if queue:
                k_next = queue.pop(0)
                nxt = submit(k_next)
                futures[nxt] = k_next
                pending.add(nxt)
            yield k, arrays, entry
