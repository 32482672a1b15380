"""``studyhub.cluster``: which cluster a command runs on, and mapping over it in order."""

from __future__ import annotations

import pytest

from studyhub.cluster import client_map, dask_client
from studyhub.errors import InputError


def test_a_cluster_needs_workers_or_a_scheduler() -> None:
    with pytest.raises(InputError) as info, dask_client():
        pass
    assert "no cluster was asked for; give --workers N or --scheduler URL" in str(info.value)


def test_zero_workers_are_refused() -> None:
    with pytest.raises(InputError) as info, dask_client(workers=0):
        pass
    assert "--workers is 0; give at least 1 worker process" in str(info.value)


def test_client_map_keeps_the_order_of_the_items() -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, processes=False, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, timeout=120) as client,
    ):
        assert client_map(client)(abs, [-3, 1, -2, 0]) == [3, 1, 2, 0]
