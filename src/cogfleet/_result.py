"""The result of one safe push (one variant); every report is drawn from it.

:meth:`RunResult.to_json` is the ``--report-json`` contract (ARCHITECTURE.md). Keys
beyond the contract's are additions a reader may ignore; the HTML report is drawn from
this JSON, so it carries what a person needs to judge the run: each prediction's
outputs (files embedded as ``data:`` URIs when a report asked for them), a link to
each prediction, the live output next to the test output, and the schema changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

StepName = Literal[
    "lint",
    "push-test",
    "schema-lint",
    "schema-compat",
    "compare-outputs",
    "test-cases",
    "fuzz",
    "train",
    "promote",
    "deployment",
    "official-model",
]
Status = Literal["passed", "failed", "skipped"]


@dataclass
class StepResult:
    name: str
    status: Status
    message: str = ""
    duration_s: float = 0.0
    started_s: float = 0.0  # seconds after the run started


@dataclass
class FileComparison:
    """How one file of the live output compared with the test output's file."""

    path: str  # where in the output: ``output``, ``output[1]``, ``output.image``
    match: bool
    message: str
    metric: str | None = None  # e.g. cogfleet._images.DISTANCE_METRIC
    value: float | None = None
    threshold: float | None = None


@dataclass
class Comparison:
    """The live side of an output comparison (the case itself holds the test side)."""

    live_version: str
    live_prediction_id: str | None
    live_prediction_url: str | None
    live_output: Any
    mode: Literal["seeded", "equal", "values", "judge", "structure", "failed"]
    seed: int | None = None
    files: list[FileComparison] = field(default_factory=list)


#: What failed a case: the network (a URL that cannot be fetched), the model (the
#: prediction failed, timed out or was refused), the checker, or the AI judge.
ErrorKind = Literal["network", "model", "checker", "judge"]


@dataclass
class CaseResult:
    kind: Literal["test-case", "fuzz", "compare-outputs", "train-case"]
    index: int
    inputs: dict[str, Any]
    checker: str | None
    status: Literal["passed", "failed"]
    message: str = ""
    prediction_id: str | None = None
    duration_s: float = 0.0
    expected: Any = None  # the checker's configured value
    output: Any = None
    error: str | None = None
    prediction_url: str | None = None
    started_s: float = 0.0  # seconds after the run started
    comparison: Comparison | None = None
    error_kind: ErrorKind | None = None  # failed cases only: network, model, checker, judge


@dataclass
class SchemaChange:
    """One row of the schema-differences table (live version -> test version)."""

    where: str  # "input 'steps'", "Output", "TrainingInput.epochs"
    change: Literal["added", "removed", "changed"]
    field: str  # the schema keyword that changed ("maximum", "type"...), or "" for the whole
    live: str
    test: str
    breaking: bool
    reason: str = ""


@dataclass
class RunResult:
    variant: str
    model: str
    test_model: str
    target: str
    result: Literal["passed", "failed"] = "passed"
    pushed: bool = False
    # an interrupt stopped the run before promotion, or arrived while promotion ran
    # (which then finished: ``pushed`` and ``version`` say what the model holds)
    interrupted: bool = False
    version: str | None = None
    test_version: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)
    live_version: str | None = None
    started_at: str | None = None  # ISO 8601, UTC
    duration_s: float = 0.0
    schema_changes: list[SchemaChange] = field(default_factory=list)
    cog_version: str | None = None
    """The Cog version the variant is pinned to (and the local target ran)."""
    environment: Literal["isolated", "current"] | None = None
    """Where the version ran: its own environment (or image), or cogfleet's interpreter."""

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    def to_json(self) -> dict[str, Any]:
        """The report contract of ``--report-json`` (see ARCHITECTURE.md)."""
        data = asdict(self)
        data["duration_s"] = round(data["duration_s"], 3)
        for item in (*data["steps"], *data["cases"]):
            item["duration_s"] = round(item["duration_s"], 3)
            item["started_s"] = round(item["started_s"], 3)
        for case in data["cases"]:
            if case["error_kind"] is None:
                del case["error_kind"]  # only failed cases carry one
        return data
