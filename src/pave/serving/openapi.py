"""The gateway's OpenAPI document (``GET /v2/openapi.json``): every REST route the gateway serves.

OIP v2 (JSON, and the binary tensor data extension: a JSON header of
``Inference-Header-Content-Length`` bytes followed by raw tensor bytes, both ways), explanations
(``/explain``), KServe V1 (``/v1/models``, ``:predict``, ``:explain``), gzip or deflate bodies
(``Content-Encoding``, ``Accept-Encoding``), the health routes and ``/metrics``.

Written out rather than generated, since the gateway is plain ASGI; ``tests/serving`` fuzzes the
gateway from it (every generated request answered without a 5xx, every answer matching its
schema), so the document cannot drift from what the gateway does.
"""

from __future__ import annotations

from typing import Any

from pave.serving.protocol import DATATYPES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_NAME = {"name": "model_name", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
_VERSION = {
    "name": "model_version",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
        "additionalProperties": False,
    },
    "Live": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
    "Ready": {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}},
    "ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("TensorMetadata")},
            "outputs": {"type": "array", "items": _ref("TensorMetadata")},
        },
    },
    "ModelReady": {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "RequestInput": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "parameters": {"type": "object"},
            "data": {"description": "row-major tensor data, flat or nested"},
        },
    },
    "RequestOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
    },
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "description": "a deployment's sticky key may be given here instead of a header",
            },
            "inputs": {"type": "array", "minItems": 1, "items": _ref("RequestInput")},
            "outputs": {"type": "array", "items": _ref("RequestOutput")},
        },
    },
    "ResponseOutput": {
        "type": "object",
        "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "data": {
                "type": "array",
                "items": {"type": ["number", "string", "boolean", "null"]},
                "description": "flat, row-major; null for NaN and infinities",
            },
        },
    },
    "InferenceResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "id", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "outputs": {"type": "array", "items": _ref("ResponseOutput")},
        },
    },
}

_SCHEMAS |= {
    "Explanation": {
        "type": "object",
        "required": ["method", "output_space", "outputs", "features", "base_values", "attributions"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "method": {"type": "string", "enum": ["linear", "tree", "kernel"]},
            "output_space": {"type": "string"},
            "outputs": {"type": "array", "items": {"type": "string"}},
            "features": {"type": "array", "items": {"type": "string"}},
            "base_values": {"type": "array", "description": "one per output"},
            "attributions": {"type": "array", "description": "[row][output][feature]"},
            "model_output": {"type": "array", "description": "[row][output], in output_space"},
        },
        "description": "base_values[k] + sum_j attributions[i][k][j] == model_output[i][k]",
    },
    "V1Request": {
        "type": "object",
        "properties": {
            "instances": {
                "type": "array",
                "description": "rows: lists in column order, or column: value objects",
            },
            "inputs": {"type": "array", "description": "the same rows, under KServe's other key"},
        },
    },
    "V1Predictions": {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {"type": "array", "description": "the model's first output"}},
    },
    "V1Explanations": {
        "type": "object",
        "required": ["explanations"],
        "properties": {
            "explanations": {"type": "array", "description": "one per instance"},
            "method": {"type": "string"},
            "output_space": {"type": "string"},
            "outputs": {"type": "array", "items": {"type": "string"}},
            "features": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V1Models": {
        "type": "object",
        "required": ["models"],
        "properties": {"models": {"type": "array", "items": {"type": "string"}}},
    },
}

_BINARY = {
    "description": "the binary tensor data extension: the JSON request of "
    "Inference-Header-Content-Length bytes, then each input's raw little-endian bytes (an input "
    'with "parameters": {"binary_data_size": N} takes the next N bytes)',
    "schema": {"type": "string", "format": "binary"},
}
_CODING = [
    {
        "name": "Inference-Header-Content-Length",
        "in": "header",
        "required": False,
        "description": "binary tensor data extension: the length of the body's JSON part",
        "schema": {"type": "integer", "minimum": 0},
    },
    {
        "name": "Content-Encoding",
        "in": "header",
        "required": False,
        "description": "gzip or deflate: the body is inflated (no further than the size limit)",
        "schema": {"type": "string", "enum": ["gzip", "deflate", "identity"]},
    },
]

_ANSWER_HEADERS = {
    "pave-model-version": {"description": "the version that answered", "schema": {"type": "string"}},
    "pave-inference-id": {
        "description": "the inference id, for labels sent later",
        "schema": {"type": "string"},
    },
}


def _model_routes(versioned: bool) -> dict[str, Any]:
    params = [_NAME, _VERSION] if versioned else [_NAME]
    base = "/v2/models/{model_name}" + ("/versions/{model_version}" if versioned else "")
    suffix = "_version" if versioned else ""
    which = "the version" if versioned else "the model (the version with the most traffic)"
    not_found = _error("unknown model or version")
    return {
        base: {
            "get": {
                "operationId": f"model_metadata{suffix}",
                "summary": f"Metadata of {which}: inputs and outputs from its signature",
                "parameters": params,
                "responses": {
                    "200": _json(_ref("ModelMetadata"), "model metadata"),
                    "404": not_found,
                    "503": _error("the model is not available (failed to load)"),
                },
            }
        },
        f"{base}/ready": {
            "get": {
                "operationId": f"model_ready{suffix}",
                "summary": f"Whether {which} can answer",
                "parameters": params,
                "responses": {
                    "200": _json(_ref("ModelReady"), "ready"),
                    "404": not_found,
                    "503": _error("loading, or failed to load"),
                },
            }
        },
        f"{base}/infer": {
            "post": {
                "operationId": f"model_infer{suffix}",
                "summary": "Inference"
                + ("" if versioned else "; the deployment's traffic split picks the version"),
                "parameters": [*params, *_CODING],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("InferenceRequest")},
                        "application/octet-stream": _BINARY,
                    },
                },
                "responses": {
                    "200": {
                        "description": "the model's outputs; binary (the extension's layout, with "
                        "Inference-Header-Content-Length) for the outputs the request asks so "
                        '("binary_data_output": true, or "binary_data": true on an output)',
                        "content": {
                            "application/json": {"schema": _ref("InferenceResponse")},
                            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                        },
                        "headers": _ANSWER_HEADERS,
                    },
                    "400": _error("bad input; the message names the input and the problem"),
                    "404": not_found,
                    "413": _error("body over the gateway's size limit"),
                    "415": _error("neither JSON nor the binary tensor data extension"),
                    "503": _error("the model is not available"),
                },
            }
        },
        f"{base}/explain": {
            "post": {
                "operationId": f"model_explain{suffix}",
                "summary": "SHAP attributions of the rows of an inference request, in a stated output space",
                "parameters": [*params, *_CODING],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("InferenceRequest")},
                        "application/octet-stream": _BINARY,
                    },
                },
                "responses": {
                    "200": _json(_ref("Explanation"), "attributions, base values and the model's output"),
                    "400": _error("bad input, or non-numeric features"),
                    "404": not_found,
                    "413": _error("body over the gateway's size limit"),
                    "415": _error("neither JSON nor the binary tensor data extension"),
                    "503": _error("the model is not available, or the explain extra is missing"),
                },
            }
        },
    }


def _v1_routes() -> dict[str, Any]:
    not_found = _error("unknown model")
    body = {"required": True, "content": {"application/json": {"schema": _ref("V1Request")}}}
    return {
        "/v1/models": {
            "get": {
                "operationId": "v1_models",
                "summary": "KServe V1: the deployments the caller may call",
                "responses": {"200": _json(_ref("V1Models"), "model names")},
            }
        },
        "/v1/models/{model_name}": {
            "get": {
                "operationId": "v1_model_ready",
                "summary": "KServe V1: readiness of the model",
                "parameters": [_NAME],
                "responses": {
                    "200": _json(_ref("ModelReady"), "ready"),
                    "404": not_found,
                    "503": _error("loading, or failed to load"),
                },
            }
        },
        "/v1/models/{model_name}:predict": {
            "post": {
                "operationId": "v1_predict",
                "summary": "KServe V1 prediction; the deployment's traffic split picks the version",
                "parameters": [_NAME, _CODING[1]],
                "requestBody": body,
                "responses": {
                    "200": {
                        **_json(_ref("V1Predictions"), "the model's first output"),
                        "headers": _ANSWER_HEADERS,
                    },
                    "400": _error("bad input"),
                    "404": not_found,
                    "413": _error("body over the gateway's size limit"),
                    "415": _error("not JSON"),
                    "503": _error("the model is not available"),
                },
            }
        },
        "/v1/models/{model_name}:explain": {
            "post": {
                "operationId": "v1_explain",
                "summary": "KServe V1 explanation: the attributions of each instance",
                "parameters": [_NAME, _CODING[1]],
                "requestBody": body,
                "responses": {
                    "200": _json(_ref("V1Explanations"), "one explanation per instance"),
                    "400": _error("bad input, or non-numeric features"),
                    "404": not_found,
                    "413": _error("body over the gateway's size limit"),
                    "415": _error("not JSON"),
                    "503": _error("the model is not available, or the explain extra is missing"),
                },
            }
        },
    }


def openapi_document(version: str, *, token_required: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway's routes.

    With ``token_required`` (the platform's gateway), the model routes and ``/metrics`` declare the
    bearer scheme and their 401 and 403 answers; the health routes, the server metadata and this
    document stay open.
    """
    paths: dict[str, Any] = {
        "/v2/health/live": {
            "get": {
                "operationId": "server_live",
                "summary": "The gateway process answers",
                "responses": {"200": _json(_ref("Live"), "live")},
            }
        },
        "/v2/health/ready": {
            "get": {
                "operationId": "server_ready",
                "summary": "The gateway has read its deployments",
                "responses": {
                    "200": _json(_ref("Ready"), "ready"),
                    "503": _error("the deployments have not been read yet"),
                },
            }
        },
        "/v2": {
            "get": {
                "operationId": "server_metadata",
                "summary": "Server metadata",
                "responses": {"200": _json(_ref("ServerMetadata"), "server metadata")},
            }
        },
        **_model_routes(versioned=False),
        **_model_routes(versioned=True),
        **_v1_routes(),
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics, summed over the gateway's worker processes",
                "responses": {
                    "200": {"description": "Prometheus text format", "content": {"text/plain": {}}}
                },
            }
        },
        "/v2/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        },
    }
    components: dict[str, Any] = {"schemas": _SCHEMAS}
    if token_required:
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A Pave token of a caller who may read the deployment's project "
                "(`pave token create`); /metrics needs a platform-wide token.",
            }
        }
        for route, item in paths.items():
            if route.startswith(("/v2/models/", "/v1/models")) or route == "/metrics":
                for operation in item.values():
                    operation["security"] = [{"bearer": []}]
                    operation["responses"]["401"] = _error("no token, or a token that is not valid")
                    operation["responses"]["403"] = _error("the token may not read this deployment")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Pave inference gateway",
            "version": version,
            "description": "Open Inference Protocol v2 (REST; JSON or the binary tensor data "
            'extension; gzip), explanations, and KServe V1. Errors answer {"error": "..."}.',
        },
        "paths": paths,
        "components": components,
    }
