"""One `wa-monitor serve` per backend for the whole contract suite (its set-up is the
expensive part); under `--dist loadgroup` each backend's tests share one worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import BACKENDS, _fresh_database
from tests.contract.world import FrontEnd, front_end_world


@pytest.fixture(
    scope="session",
    params=[pytest.param(b, marks=pytest.mark.xdist_group(f"contract-{b}")) for b in BACKENDS],
)
def fe(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FrontEnd]:
    backend: str = request.param
    root = tmp_path_factory.mktemp(f"contract-{backend}")
    database = _fresh_database(request, root, backend)
    try:
        with front_end_world(next(database), root, backend) as world:
            yield world
    finally:
        database.close()
