"""The ASGI entry point granian loads in each HTTP worker process: `api.asgi:app_from_env`."""

from __future__ import annotations

import os

from litestar import Litestar

from api.app import create_app
from api.processes import freeze_startup_objects
from infra.settings import Settings


def app_from_env() -> Litestar:
    # `beacon serve` runs projections in a separate worker process (or not at all with --no-worker),
    # so HTTP workers are stateless API replicas unless BEACON_RUN_WORKER=1 says otherwise.
    app = create_app(Settings.from_env(), run_worker=os.environ.get("BEACON_RUN_WORKER") == "1")
    app.on_startup.append(freeze_startup_objects)  # after the lifespan has built what the process holds
    return app
