"""The OpenAPI 3.1 description of ``landmark serve``'s HTTP API (served as ``/openapi.json``).

Written by hand beside ``api.py`` rather than generated: the routes are few, and a test
checks that this lists exactly the routes the app has, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from landmark.coordinator.client import CURSOR_HEADER, MORE_HEADER

JOB_STATES = ["queued", "running", "paused", "done", "cancelled", "failed"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json_body(_ref("Error"), description)


JOB_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The job's id, as `POST /jobs` answered it.",
}
UNKNOWN = _error("No job has this id.")
COMMON_ERRORS = {
    "401": _error("A token is needed (`Authorization: Bearer TOKEN`)."),
    "403": _error("A cross-site request, or a request to a non-loopback name without a token."),
    "500": _error("The service failed on this request; its log says why."),
}

STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A job's status.",
    "required": ["id", "name", "priority", "state"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string", "description": "The job's `name`."},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9},
        "state": {"type": "string", "enum": JOB_STATES},
        "submitted_at": {"type": ["number", "string", "null"], "description": "When queued."},
        "started_at": {"type": ["number", "string", "null"]},
        "ended_at": {"type": ["number", "string", "null"]},
        "done": {"type": "integer", "description": "Records done."},
        "failed": {"type": "integer", "description": "Records failed (each with its reason)."},
        "pending": {"type": "integer", "description": "Containers not finished yet."},
        "known": {"type": "integer", "description": "Containers known (grows with discovery)."},
        "rate": {"type": "number", "description": "Records per second."},
        "eta_s": {"type": ["number", "null"], "description": "Seconds left, estimated."},
        "verdict": {
            "type": ["string", "null"],
            "description": "The load verdict: ok, throttle, shed.",
        },
        "cache_hits": {"type": ["integer", "null"]},
        "share": {"type": ["number", "null"], "description": "Pages per actor given to this job."},
        "latency_ms": {
            "type": "object",
            "description": "Milliseconds per record: p50, p95, p99.",
            "additionalProperties": {"type": "number"},
        },
        "restarts": {"type": ["integer", "null"], "description": "Runs started again."},
        "error": {"type": ["string", "null"], "description": "Why a failed job failed."},
    },
}

STATS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ready": {"type": "boolean", "description": "The pool is up: a job starts at once."},
        "uptime_s": {"type": "number"},
        "jobs": {
            "type": "object",
            "description": "How many jobs are in each state.",
            "additionalProperties": {"type": "integer"},
        },
        "throughput": {"type": "number", "description": "Records per second over the last minute."},
        "latency_ms": {
            "type": "object",
            "properties": {key: {"type": ["number", "null"]} for key in ("p50", "p95", "p99")},
        },
        "memory": {
            "type": "object",
            "properties": {
                "fraction": {"type": ["number", "null"]},
                "verdict": {"type": ["string", "null"]},
            },
        },
        "records_last_minute": {"type": "integer"},
        "pages_per_actor": {"type": ["integer", "null"]},
        "actors_replaced": {"type": "integer"},
        "actors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "node": {"type": "string"},
                    "state": {"type": "string"},
                    "jobs": {},
                    "pages": {"type": "integer"},
                },
            },
        },
    },
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong and what to do."},
        "problems": {
            "type": "array",
            "items": {"type": "string"},
            "description": "An invalid job: one line per problem, `field.path: reason`, as "
            "`landmark validate` prints them.",
        },
    },
}

RESULT_HEADERS = {
    CURSOR_HEADER: {
        "description": "The cursor to send as `after` for the next chunk (opaque).",
        "schema": {"type": "string"},
    },
    MORE_HEADER: {
        "description": "`true` when complete records were left for the next chunk.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "Landmark-Records": {
        "description": "How many records this chunk holds.",
        "schema": {"type": "integer"},
    },
    "Landmark-Job-State": {"description": "The job's state.", "schema": {"type": "string"}},
}


def _action(verb: str, what: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"{verb}Job",
            "summary": what,
            "parameters": [JOB_ID],
            "responses": {
                "200": _json_body(_ref("JobStatus"), "The job's status after the call."),
                "404": UNKNOWN,
                "409": _error("Not possible in the job's state (e.g. resuming a finished job)."),
                **COMMON_ERRORS,
            },
        }
    }


def openapi() -> dict[str, Any]:
    """The whole description, a fresh dict each call."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "landmark serve",
            "version": "1",
            "description": "Jobs for one shared pool of browser actors: submit, follow, "
            "pause, resume, cancel, and read the records as they arrive. With a token, every "
            "route but /healthz needs `Authorization: Bearer TOKEN`.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"JobStatus": STATUS_SCHEMA, "Stats": STATS_SCHEMA, "Error": ERROR_SCHEMA},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/": {
                "get": {
                    "operationId": "statusPage",
                    "summary": "The status page (HTML); open it as /?token=TOKEN with a token.",
                    "parameters": [
                        {
                            "name": "token",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The page.", "content": {"text/html": {}}},
                        **COMMON_ERRORS,
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness; needs no token.",
                    "security": [],
                    "responses": {
                        "200": _json_body(
                            {"type": "object", "properties": {"ok": {"const": True}}}, "Alive."
                        )
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This description.",
                    "responses": {
                        "200": _json_body({"type": "object"}, "OpenAPI 3.1."),
                        **COMMON_ERRORS,
                    },
                }
            },
            "/jobs": {
                "get": {
                    "operationId": "listJobs",
                    "summary": "Every job's status, newest first.",
                    "responses": {
                        "200": _json_body({"type": "array", "items": _ref("JobStatus")}, "Jobs."),
                        **COMMON_ERRORS,
                    },
                },
                "post": {
                    "operationId": "submitJob",
                    "summary": "Queue a job (YAML or JSON, as a job file), or a JSON envelope "
                    '`{"job": {...}, "priority": N}`.',
                    "parameters": [
                        {
                            "name": "priority",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 0, "maximum": 9, "default": 0},
                            "description": "0 to 9 (not together with the envelope's).",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/yaml": {"schema": {"type": "string"}},
                            "text/yaml": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "object"}},
                        },
                    },
                    "responses": {
                        "201": {
                            **_json_body(_ref("JobStatus"), "Queued."),
                            "headers": {
                                "Location": {
                                    "description": "/jobs/{id}",
                                    "schema": {"type": "string"},
                                }
                            },
                        },
                        "413": _error("The body is larger than the service accepts."),
                        "422": _error(
                            "An invalid job (`problems` names each field), a URL scheme or a "
                            "server-side file this service does not allow, or a bad priority."
                        ),
                        **COMMON_ERRORS,
                    },
                },
            },
            "/jobs/{id}": {
                "get": {
                    "operationId": "getJob",
                    "summary": "One job's status.",
                    "parameters": [JOB_ID],
                    "responses": {
                        "200": _json_body(_ref("JobStatus"), "The job."),
                        "404": UNKNOWN,
                        **COMMON_ERRORS,
                    },
                }
            },
            "/jobs/{id}/pause": _action("pause", "Pause the job (its leases finish first)."),
            "/jobs/{id}/resume": _action("resume", "Resume a paused job."),
            "/jobs/{id}/cancel": _action("cancel", "Cancel the job; its records so far stay."),
            "/jobs/{id}/results": {
                "get": {
                    "operationId": "getResults",
                    "summary": "The job's records so far, a chunk at a time. Follow "
                    f"`{CURSOR_HEADER}` as `after` while `{MORE_HEADER}` is true; the chunks "
                    "add up to the whole (CSV: the header in the first chunk only). A record "
                    "still being written waits for the next read.",
                    "parameters": [
                        JOB_ID,
                        {
                            "name": "format",
                            "in": "query",
                            "schema": {"enum": ["jsonl", "csv", "xlsx"], "default": "jsonl"},
                            "description": "xlsx: the whole job in one file, once it is finished.",
                        },
                        {
                            "name": "after",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": f"A cursor from `{CURSOR_HEADER}`; absent: the start.",
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 10000,
                                "default": 1000,
                            },
                            "description": "Records per chunk at most.",
                        },
                        {
                            "name": "tail",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                            "description": "The last N records instead (not with `after`); "
                            "the cursor then follows new ones.",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "Records: JSON lines, CSV rows, or an Excel file.",
                            "headers": RESULT_HEADERS,
                            "content": {
                                "application/x-ndjson": {"schema": {"type": "string"}},
                                "text/csv": {"schema": {"type": "string"}},
                                "application/vnd.openxmlformats-officedocument."
                                "spreadsheetml.sheet": {
                                    "schema": {
                                        "type": "string",
                                        "contentMediaType": "application/octet-stream",
                                    }
                                },
                            },
                        },
                        "400": _error("A bad format, cursor, limit or tail."),
                        "404": UNKNOWN,
                        "409": _error("xlsx of a job that is not finished."),
                        "501": _error("xlsx without openpyxl on the service's machine."),
                        **COMMON_ERRORS,
                    },
                }
            },
            "/stats": {
                "get": {
                    "operationId": "stats",
                    "summary": "The service: uptime, jobs by state, throughput, latency, "
                    "memory, actors.",
                    "responses": {"200": _json_body(_ref("Stats"), "Stats."), **COMMON_ERRORS},
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "The same numbers in Prometheus' text format (0.0.4).",
                    "responses": {
                        "200": {
                            "description": "Prometheus text.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **COMMON_ERRORS,
                    },
                }
            },
        },
    }
