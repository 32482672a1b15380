"""Dask clusters: a local one of N worker processes, or an existing one by its scheduler.

``studyhub explain`` and ``studyhub power`` hand their work to a Dask
``distributed`` cluster when given ``--workers N`` (a local cluster of N worker
processes, one thread each) or ``--scheduler tcp://host:8786`` (an existing
cluster). Dask is an optional dependency (``pip install 'studyhub[distributed]'``):
nothing imports it unless a cluster is asked for.

Work sent to a cluster is pure: a task carries what it needs and returns a value;
only the process that started the command writes to the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from studyhub.errors import InputError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["DASK_SCHEMES", "TASK_RETRIES", "client_map", "dask_client", "require_distributed"]

#: Address schemes a Dask scheduler listens on.
DASK_SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://", "ws://", "wss://")
#: How often a task that raised is retried (a worker that died mid-task is retried by the
#: scheduler itself, up to ``distributed.scheduler.allowed-failures`` times).
TASK_RETRIES = 3

T = TypeVar("T")
R = TypeVar("R")


def require_distributed(option: str) -> None:
    """Refuse ``option`` when Dask distributed is not installed, naming the install command."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise InputError(
            f"{option} needs Dask distributed, which is not installed; install it with "
            "pip install 'studyhub[distributed]' (or pip install 'dask[distributed]')"
        ) from None


def _check_choice(scheduler: str | None, workers: int | None) -> None:
    if scheduler is not None and workers is not None:
        raise InputError(
            f"both --scheduler {scheduler} and --workers {workers} were given; give --workers N "
            "for a local cluster or --scheduler URL for an existing one, not both"
        )
    if workers is not None and workers < 1:
        raise InputError(f"--workers is {workers}; give at least 1 worker process")
    if scheduler is not None and not scheduler.startswith(DASK_SCHEMES):
        raise InputError(
            f"--scheduler {scheduler!r} is not a Dask scheduler address; give one like "
            f"tcp://host:8786 (schemes: {', '.join(DASK_SCHEMES)})"
        )


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A Dask client: on a new local cluster of ``workers`` processes, or on ``scheduler``.

    The local cluster (one thread per worker process) is closed on exit;
    an existing cluster is left running.

    Raises
    ------
    InputError
        When both or neither are given, the address is not a Dask address, Dask
        distributed is not installed, or the scheduler cannot be reached within
        Dask's connect timeout (``distributed.comm.timeouts.connect``).
    """
    if scheduler is None and workers is None:
        raise InputError("no cluster was asked for; give --workers N or --scheduler URL")
    _check_choice(scheduler, workers)
    require_distributed("--scheduler" if scheduler is not None else "--workers")
    import dask.config
    from distributed import Client, LocalCluster

    if scheduler is not None:
        timeout = dask.config.get("distributed.comm.timeouts.connect")
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise InputError(
                f"cannot reach the Dask scheduler at {scheduler} within {timeout} "
                f"({type(exc).__name__}); start it (dask scheduler) and its workers "
                "(dask worker ADDRESS), or fix --scheduler"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: never collides with another cluster
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def client_map(client: Client) -> Callable[[Callable[[T], R], Sequence[T]], list[R]]:
    """``map`` over a Dask cluster: the results in the order of the items.

    Each item is its own task, retried when it raises or when its worker dies.
    """

    def run(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        futures = client.map(fn, list(items), pure=False, retries=TASK_RETRIES)
        results: list[Any] = client.gather(futures)
        return results

    return run
