"""The local Replicate-compatible HTTP API (starlette): the app factory.

Everything lives under ``/v1`` with the shapes the official ``replicate`` client
1.0.7 requires (see the project's reference notes on the Replicate HTTP API).
Each resource family has its own module with its routes and validation:

* ``_models``: models and versions (and cogfleet's push/promote extension);
* ``_predictions``: predictions, model predictions, the SSE stream;
* ``_trainings``: trainings and the weights they produce;
* ``_deployments``: deployments and deployment predictions;
* ``_files``: uploaded files;
* ``_account``: account, hardware, webhook secret, collections, search.

They share ``_core`` (settings, accounts, problem JSON, ids, pagination, auth, body
limits), ``_validation`` (request bodies as Replicate checks them), ``_webhooks``
(signed delivery), and the run execution core: ``_runs`` (the life of a
prediction or training, run by real Cog predictors through
:class:`cogfleet.server._runner.RunnerPool`, whose model server processes are
``_runner_process``, whose exchange of one prediction with its model server is
``_exchange`` and whose loopback webhook receiver is ``_receiver``), ``_runtimes``
(the environment each version runs in), ``_inputs`` and ``_outputs`` (file outputs
delivered as URLs). Resources persist in SQLite under the state directory
(``_state``). What deliberately differs from Replicate is listed in the package
docstring (``cogfleet.server``).

Every error is ``application/problem+json``, unknown routes and methods included,
and so is the answer to a request that is not valid HTTP/1.1 (uvicorn runs the
server with :class:`cogfleet.server._threaded.ProblemHttpProtocol`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from cogfleet.server._account import Account
from cogfleet.server._core import (
    NOT_FOUND,
    ApiError,
    AuthMiddleware,
    BodyLimit,
    ServerConfig,
    problem,
)
from cogfleet.server._deployments import Deployments
from cogfleet.server._files import Files
from cogfleet.server._inputs import Inputs
from cogfleet.server._models import Models
from cogfleet.server._outputs import Outputs
from cogfleet.server._predictions import Predictions
from cogfleet.server._runs import Runs
from cogfleet.server._runtimes import Runtimes
from cogfleet.server._state import Store
from cogfleet.server._trainings import Trainings
from cogfleet.server._webhooks import Webhooks

__all__ = ["LocalApi", "ServerConfig", "create_app"]

log = logging.getLogger("cogfleet.server")


class LocalApi:
    """The server's state and resources; :meth:`asgi` builds the ASGI app."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.state_dir = Path(config.state_dir)
        for sub in ("builds", "files", "weights", "tmp", "logs", "outputs"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.store = Store(self.state_dir / "state.sqlite3")
        self.webhooks = Webhooks(self.state_dir)
        outputs = Outputs(self.state_dir)
        inputs = Inputs(self.store, self.state_dir / "files")
        self.runtimes = Runtimes(self.state_dir)
        self.runs = Runs(config, self.store, self.webhooks, inputs, outputs, self.runtimes)
        size = config.page_size
        self.models = Models(
            self.store,
            self.state_dir,
            size,
            frozenset(config.official),
            self.runs.render,
            self.runtimes,
        )
        self.resources: list[Any] = [
            Account(self.webhooks, self.models, config.collections, size),
            self.models,
            Predictions(self.runs, self.models, size),
            Trainings(self.runs, self.models, size),
            Deployments(self.runs, self.models, size),
            Files(self.store, self.state_dir, size),
            outputs,
        ]
        self.runs.recover()

    @property
    def pool(self) -> Any:
        """The runner pool (None until the app has started)."""
        return self.runs.pool

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        """Start the runner pool; on exit stop all work and every coglet process."""
        from cogfleet.server._runner import RunnerPool

        self.runs.pool = RunnerPool(
            idle_timeout=self.config.idle_timeout, log_dir=self.state_dir / "logs"
        )
        try:
            yield
        finally:
            await self.runs.close()
            await self.webhooks.close()
            await self.runs.pool.close()
            self.store.close()

    def routes(self) -> list[Route]:
        """Every route of every resource family."""
        return [route for resource in self.resources for route in resource.routes()]

    def asgi(self) -> ASGIApp:
        """The ASGI application: routes wrapped in auth, body limits, fault injection
        and latency middleware."""
        from cogfleet.server._faults import FaultInjection, NetworkLatency

        app = Starlette(
            routes=self.routes(),
            lifespan=self.lifespan,
            exception_handlers={
                ApiError: _api_error,
                HTTPException: _http_error,
                ClientDisconnect: _client_gone,
                Exception: _internal_error,
            },
        )
        # A path with a trailing slash is not one of the API's paths: 404, not a redirect.
        app.router.redirect_slashes = False
        wrapped: ASGIApp = BodyLimit(
            app,
            json_bytes=self.config.max_json_bytes,
            upload_bytes=self.config.max_upload_bytes,
        )
        wrapped = AuthMiddleware(wrapped, self.config.accounts())
        if self.config.fail_rate or self.config.rate_limit:
            wrapped = FaultInjection(
                wrapped,
                fail_rate=self.config.fail_rate,
                seed=self.config.fail_seed,
                rate_limit=self.config.rate_limit,
            )
        if self.config.request_latency:
            wrapped = NetworkLatency(wrapped, seconds=self.config.request_latency)
        return wrapped


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return problem(exc.status, exc.detail, exc.title, **exc.extra)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette's own errors (no route: 404, wrong method: 405, a body it cannot read).
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        resp = problem(405, f'Method "{request.method}" not allowed.', "Method Not Allowed")
        resp.headers["Allow"] = ", ".join(_allowed_methods(request))
        return resp
    detail = NOT_FOUND if exc.status_code == 404 else str(exc.detail)
    resp = problem(exc.status_code, detail)
    for key, value in (exc.headers or {}).items():
        resp.headers[key] = value
    return resp


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on the request's path.

    Starlette names only the first route that matched the path, but a path is often
    served by several (``GET`` and ``POST /v1/predictions`` are two routes).
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.path_regex.match(request.scope["path"]):
            methods |= route.methods or set()
    return sorted(methods)


async def _client_gone(_request: Request, _exc: Exception) -> Response:
    # The client closed the connection before its body arrived: nobody reads this.
    return problem(400, "The request body ended before its declared length", "Bad request")


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(500, f"Internal server error: {type(exc).__name__}", "Internal Server Error")


def create_app(config: ServerConfig) -> tuple[LocalApi, ASGIApp]:
    """Build the server state and its ASGI application."""
    api = LocalApi(config)
    return api, api.asgi()
