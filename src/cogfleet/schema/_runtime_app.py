"""The fixed parts of the document the SDK's FastAPI app gave (Cog <= 0.16).

Every model's document had the same request/response components and paths around
its ``Input`` and ``Output``; they differ only by the pydantic major the image had
(``nullable`` fields, ``additionalProperties`` and titles with pydantic 2) and by the
SDK version (``PredictionRequest.context`` from 0.14.11). A model with a trainer adds
the training components and paths.
"""

from __future__ import annotations

from typing import Any

from cogfleet.schema._versions import Rules, parse_version

__all__ = ["REF", "remove_title_next_to_ref", "skeleton", "training_components", "training_paths"]

REF = "#/components/schemas/"


def _json_response(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "content": {"application/json": {"schema": schema}},
        "description": "Successful Response",
    }


def _validation_error() -> dict[str, Any]:
    return {
        "content": {"application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}},
        "description": "Validation Error",
    }


def _prefer() -> dict[str, Any]:
    """The ``Prefer`` header parameter of the SDK's create and PUT routes."""
    return {
        "in": "header",
        "name": "prefer",
        "required": False,
        "schema": {"title": "Prefer", "type": "string"},
    }


def _path_id(name: str, title: str) -> dict[str, Any]:
    """A run id path parameter (``prediction_id``, ``training_id``)."""
    return {"in": "path", "name": name, "required": True,
            "schema": {"title": title, "type": "string"}}


def skeleton(
    rules: Rules, input_ref: str, output_ref: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fixed components and paths of the SDK's FastAPI app (predict mode)."""
    p2 = rules.pydantic == 2
    version = parse_version(rules.version)

    def opt(schema: dict[str, Any]) -> dict[str, Any]:
        return {**schema, "nullable": True} if p2 else schema

    request_props: dict[str, Any] = {
        "created_at": opt({"format": "date-time", "title": "Created At", "type": "string"}),
        "id": opt({"title": "Id", "type": "string"}),
        "input": opt({"$ref": input_ref}),
        "output_file_prefix": opt({"title": "Output File Prefix", "type": "string"}),
        "webhook": opt(
            {
                "format": "uri",
                "maxLength": 65536,
                "minLength": 1,
                "title": "Webhook",
                "type": "string",
            }
        ),
        "webhook_events_filter": opt(
            {
                "default": ["start", "output", "logs", "completed"],
                "items": {"$ref": REF + "WebhookEvent"},
                "type": "array",
            }
        ),
    }
    if version >= (0, 14, 11):
        request_props["context"] = opt(
            {"additionalProperties": {"type": "string"}, "title": "Context", "type": "object"}
        )
    metrics: dict[str, Any] = {"title": "Metrics", "type": "object"}
    if p2:
        metrics = {**metrics, "additionalProperties": True, "nullable": True}
    response_props: dict[str, Any] = {
        "completed_at": opt({"format": "date-time", "title": "Completed At", "type": "string"}),
        "created_at": opt({"format": "date-time", "title": "Created At", "type": "string"}),
        "error": opt({"title": "Error", "type": "string"}),
        "id": opt({"title": "Id", "type": "string"}),
        "input": opt({"$ref": input_ref}),
        "logs": {"default": "", "title": "Logs", "type": "string"},
        "metrics": metrics,
        "output": {"$ref": output_ref},
        "started_at": opt({"format": "date-time", "title": "Started At", "type": "string"}),
        "status": opt({"$ref": REF + "Status"}),
        "version": opt({"title": "Version", "type": "string"}),
    }
    components: dict[str, Any] = {
        "HTTPValidationError": {
            "properties": {
                "detail": {
                    "items": {"$ref": REF + "ValidationError"},
                    "title": "Detail",
                    "type": "array",
                }
            },
            "title": "HTTPValidationError",
            "type": "object",
        },
        "PredictionRequest": {
            "properties": request_props,
            "title": "PredictionRequest",
            "type": "object",
        },
        "PredictionResponse": {
            "properties": response_props,
            "title": "PredictionResponse",
            "type": "object",
        },
        "Status": {
            "description": "An enumeration.",
            "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
            "title": "Status",
            "type": "string",
        },
        "ValidationError": {
            "properties": {
                "loc": {
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    "title": "Location",
                    "type": "array",
                },
                "msg": {"title": "Message", "type": "string"},
                "type": {"title": "Error Type", "type": "string"},
            },
            "required": ["loc", "msg", "type"],
            "title": "ValidationError",
            "type": "object",
        },
        "WebhookEvent": {
            "description": "An enumeration.",
            "enum": ["start", "output", "logs", "completed"],
            "title": "WebhookEvent",
            "type": "string",
        },
    }

    json_response = _json_response
    validation_error = _validation_error()
    prefer = _prefer()
    prediction_id = _path_id("prediction_id", "Prediction ID")
    request_ref = {"$ref": REF + "PredictionRequest"}
    response = json_response({"$ref": REF + "PredictionResponse"})
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "operationId": "root__get",
                "responses": {"200": json_response({"title": "Response Root  Get"})},
                "summary": "Root",
            }
        },
        "/health-check": {
            "get": {
                "operationId": "healthcheck_health_check_get",
                "responses": {
                    "200": json_response({"title": "Response Healthcheck Health Check Get"})
                },
                "summary": "Healthcheck",
            }
        },
        "/predictions": {
            "post": {
                "description": "Run a single prediction on the model",
                "operationId": "predict_predictions_post",
                "parameters": [prefer],
                "requestBody": {"content": {"application/json": {"schema": request_ref}}},
                "responses": {"200": response, "422": validation_error},
                "summary": "Predict",
            }
        },
        "/predictions/{prediction_id}": {
            "put": {
                "description": "Run a single prediction on the model (idempotent creation).",
                "operationId": "predict_idempotent_predictions__prediction_id__put",
                "parameters": [prediction_id, prefer],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {"allOf": [request_ref], "title": "Prediction Request"}
                        }
                    },
                    "required": True,
                },
                "responses": {"200": response, "422": validation_error},
                "summary": "Predict Idempotent",
            }
        },
        "/predictions/{prediction_id}/cancel": {
            "post": {
                "description": "Cancel a running prediction",
                "operationId": "cancel_predictions__prediction_id__cancel_post",
                "parameters": [prediction_id],
                "responses": {
                    "200": json_response(
                        {"title": "Response Cancel Predictions  Prediction Id  Cancel Post"}
                    ),
                    "422": validation_error,
                },
                "summary": "Cancel",
            }
        },
        "/shutdown": {
            "post": {
                "operationId": "start_shutdown_shutdown_post",
                "responses": {
                    "200": json_response({"title": "Response Start Shutdown Shutdown Post"})
                },
                "summary": "Start Shutdown",
            }
        },
    }
    return components, paths


def training_components(rules: Rules) -> dict[str, Any]:
    """TrainingRequest/TrainingResponse: the prediction ones around TrainingInput/Output."""
    p2 = rules.pydantic == 2
    components, _ = skeleton(rules, REF + "TrainingInput", REF + "TrainingOutput")
    request = components["PredictionRequest"]
    response = components["PredictionResponse"]
    request["title"], response["title"] = "TrainingRequest", "TrainingResponse"
    if p2:
        # The pydantic-2 fix-ups of the SDK touch only the prediction components.
        events = request["properties"]["webhook_events_filter"]
        events["title"] = "Webhook Events Filter"
        response["properties"]["output"]["nullable"] = True
    return {"TrainingRequest": request, "TrainingResponse": response}


def training_paths(rules: Rules) -> dict[str, Any]:
    p2 = rules.pydantic == 2
    validation_error = _validation_error()
    prefer = _prefer()
    training_id = _path_id("training_id", "Training ID")
    request_ref = {"$ref": REF + "TrainingRequest"}
    response = _json_response({"$ref": REF + "TrainingResponse"})
    put_schema: dict[str, Any] = (
        dict(request_ref) if p2 else {"allOf": [request_ref], "title": "Training Request"}
    )
    return {
        "/trainings": {
            "post": {
                "operationId": "train_trainings_post",
                "parameters": [prefer],
                "requestBody": {"content": {"application/json": {"schema": request_ref}}},
                "responses": {"200": response, "422": validation_error},
                "summary": "Train",
            }
        },
        "/trainings/{training_id}": {
            "put": {
                "operationId": "train_idempotent_trainings__training_id__put",
                "parameters": [training_id, prefer],
                "requestBody": {
                    "content": {"application/json": {"schema": put_schema}},
                    "required": True,
                },
                "responses": {"200": response, "422": validation_error},
                "summary": "Train Idempotent",
            }
        },
        "/trainings/{training_id}/cancel": {
            "post": {
                "operationId": "cancel_training_trainings__training_id__cancel_post",
                "parameters": [training_id],
                "responses": {
                    "200": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "title": "Response Cancel Training Trainings  Training Id  "
                                    "Cancel Post"
                                }
                            }
                        },
                        "description": "Successful Response",
                    },
                    "422": validation_error,
                },
                "summary": "Cancel Training",
            }
        },
    }


def remove_title_next_to_ref(value: Any) -> None:
    if isinstance(value, dict):
        if "$ref" in value:
            value.pop("title", None)
        for child in value.values():
            remove_title_next_to_ref(child)
    elif isinstance(value, list):
        for child in value:
            remove_title_next_to_ref(child)
