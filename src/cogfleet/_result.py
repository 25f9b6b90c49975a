"""The result of one safe push (one variant); every report is drawn from it."""

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

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    def to_json(self) -> dict[str, Any]:
        """The report contract of ``--report-json`` (see ARCHITECTURE.md)."""
        data = asdict(self)
        for step in data["steps"]:
            step["duration_s"] = round(step["duration_s"], 3)
        for case in data["cases"]:
            case["duration_s"] = round(case["duration_s"], 3)
        return data
