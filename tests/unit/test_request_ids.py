"""Request ids: unique within a process, across forked workers, and UUID-shaped."""

from __future__ import annotations

import os
from uuid import UUID

from infra.ids import new_request_id


def test_request_ids_are_uuid_shaped_and_never_repeat_in_a_process() -> None:
    ids = [new_request_id() for _ in range(10_000)]

    assert len(set(ids)) == len(ids)
    assert all(str(UUID(request_id)) == request_id for request_id in ids)


def test_a_forked_worker_draws_its_own_prefix() -> None:
    # granian forks its workers from one parent: they must not hand out the same ids.
    parent = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave without running pytest's teardown
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)

    assert child[:23] != parent[:23]  # a different prefix, not just the next number
    assert new_request_id()[:23] == parent[:23]
