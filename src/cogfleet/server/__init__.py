"""The local Replicate-compatible server: HTTP API, state, and coglet runners.

It answers the official ``replicate`` client the way api.replicate.com does (the
request and response shapes, errors as problem JSON, ``Prefer: wait``, SSE,
webhooks signed like Replicate's). What deliberately differs, and why:

* **cogfleet extensions.** ``POST /v1/models/{owner}/{name}/versions`` takes a
  build folder archive (or ``{"from_version": id}``): there is no image registry
  to push to. ``GET /v1/weights/{sha256}`` serves weights a training produced.
* **Version ids** are a hash of the model, the build folder's content and how it
  runs (Cog version, environment), not an image digest: no image is built. Each
  model gets its own id for a build.
* **Permissive mode.** Without ``--token`` any non-empty token is accepted and may
  write under any owner (local use needs no account set-up); the server says so
  at start-up. With ``--token`` it scopes like Replicate.
* **Forbidden writes** (a model under an owner the token cannot write to) are 403
  problem JSON; Replicate's exact status there is undocumented.
* **Deletion conflicts** (a public model, a model with versions, a version of a
  public model or in use by a deployment or a running training) are 409 problem
  JSON; Replicate documents the rules, not the status. A version with a
  prediction still running is refused too (409): the version's predictions are
  deleted with it, as on Replicate, and a running one would outlive it; so is a
  model that a training still running will add a version to.
* **Examples** of a model are its succeeded predictions made by a token of its
  owner (Replicate's are hand-picked on the web, which has no local equivalent);
  ``default_example`` is the newest.
* **Official models** are the ones named by ``--official`` (and, under ``cogfleet
  push``, the configs' ``official_model``); their predictions report the real
  version id, not ``hidden``, so that ``GET …/versions/{id}`` works.
* **Search** matches a substring of the owner/name and description (Replicate's is
  semantic); ``models.list`` shows the token's own private models besides public
  ones, as search does.
* **Intermediate states** of a prediction created with ``Prefer: wait`` (and no
  webhook asking for start, logs or output) appear when it ends, and it counts as
  ``processing`` from when it is handed to its runner (model start-up and a free
  slot included): asking the runner for live updates costs it a webhook per
  prediction, which is what capped the server's throughput. Polled, streamed and
  webhooked predictions get them live, and are ``starting`` until the model runs.
* **Body limits**: 5 MiB for JSON (413), 100 MiB for uploads (Replicate's files
  limit); JSON nested more than 64 levels is 400. Replicate's JSON limits are not
  documented.
* **``Cancel-After``** below 5 seconds, or not a duration, is a 400 (Replicate
  documents 5 s as the minimum); so is one over a million hours (no deadline
  that far can be kept; Replicate documents no maximum).
* **Webhook URLs** must be absolute ``http(s)`` URLs (422 otherwise); ``http://``
  is accepted where Replicate wants HTTPS, since a local receiver rarely has TLS.
* **JSON** is read as Replicate's Go parser reads it: ``NaN``, ``Infinity`` and
  numbers beyond a double are 400; an unpaired UTF-16 surrogate escape, and bytes
  that are not UTF-8, become U+FFFD.
* **Delivery URLs** (``/delivery/…``) are ``http://`` on loopback, which the 1.0.7
  client leaves as plain strings rather than ``FileOutput``; ``FileOutput(url,
  client).read()`` and any HTTP GET fetch them. The synchronous answer inlines
  files as ``data:`` URIs, exactly as Replicate's does.
* **``data_removed``** is always ``false``: inputs, outputs, logs and output files
  stay for as long as the state folder does (Replicate removes those of API
  predictions after an hour), so a test suite can read them after the fact.
* **``urls.web``** names ``/p/{id}`` as Replicate's does, and a model's ``url`` is
  ``/{owner}/{name}`` on this server, but there are no web pages here: both answer
  404.
* **A ``Cancel-After`` deadline** reached before the model started ends the
  prediction ``canceled``, not ``aborted`` as Replicate's spec has it: the 1.0.7
  client refuses a prediction whose status is ``aborted``.
* **Webhooks without ``webhook_events_filter``** get all four events: Replicate's
  documents disagree on that default (see ``_webhooks``). A terminal webhook that
  fails is retried until about a minute after the run ended, as on Replicate,
  unless the server stops first.
* **Accounts** (``GET /v1/account``, a deployment release's ``created_by``) have no
  ``avatar_url`` (the spec makes it optional; there are no avatars here) and
  ``github_url`` is ``null``: a token names an account, nothing more.
* **Stream event ids** are ``<id>:<outputs sent>:<log characters sent>``
  (Replicate's look like ``<timestamp>:<n>``; clients keep them opaque), so that a
  reconnect with ``Last-Event-ID`` resumes exactly after that event.
* **Unicode line separators** (U+2028, U+2029, U+0085) in streamed text go out as
  they are, inside one ``data:`` line: an event stream ends lines only at CR and
  LF, and Replicate sends the text unchanged. The 1.0.7 client reads the stream
  with httpx's ``iter_lines``, which splits there too, so it loses the rest of that
  line; no encoding of the event avoids it (the client joins ``data:`` lines with
  LF). A reader that follows the format (a browser's ``EventSource``, httpx-sse
  0.4.2 and later) gets the text exactly.
* **A live stream of a Python-server model** (Cog <= 0.16) can send two outputs
  only with that server's next update or at the end: that server merges updates,
  and a jump of two outputs looks like coglet's update of one arriving late, which
  the stream waits for to keep the order (see ``_streams``).
* **Versions delete** answers 202, as Replicate does, which the 1.0.7 client
  reports as ``False``.
* **``Prefer: wait=N``** with N outside 1..60 waits the nearest bound and says so in
  ``Preference-Applied`` (Replicate documents the range, not what it does outside
  it); any other preference is ignored, as RFC 7240 lets a server do.
* **Trailing slashes**: a path that ends in ``/`` (``GET /v1/predictions/``) is a
  404, never a redirect to the path without it. Replicate documents every path
  without one and not what it answers with one; a redirect is no API answer (the
  1.0.7 client follows none), and a 404 makes code that builds such paths fail
  here rather than only against Replicate.
* **File downloads** (``GET /v1/files/{id}/download``) take the uploader's token
  instead of Replicate's signed ``owner``/``expiry``/``signature`` query: the API has
  no way to get the signing secret.
* **models.search** (``QUERY /v1/models``) answers every match in one page.
* **Deployments** can be deleted at once (Replicate waits until one has been
  offline and unused for 15 minutes): no instances run here to wind down.
* **``GET /v1/predictions?source=api``** lists the API's predictions (Replicate's
  spec takes only ``web``); every local prediction is ``api``.
* **Unregistered HTTP methods** (``BREW``) are a 400 bad request, not a 405: the
  server parses HTTP with llhttp, which knows every registered method (``QUERY``
  for models.search included) and no other; a 405 from a parser that takes any
  token costs a third more CPU per request.
"""

from cogfleet.server._embedded import (
    LocalServer,
    add_serve_arguments,
    run_serve,
    serve_forever,
)
from cogfleet.server._push import build_id_for, promote_version, push_build, version_id_for

__all__ = [
    "LocalServer",
    "add_serve_arguments",
    "build_id_for",
    "promote_version",
    "push_build",
    "run_serve",
    "serve_forever",
    "version_id_for",
]
