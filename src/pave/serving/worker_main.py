"""A model's own process: loads one MLflow model in its own virtualenv and answers predictions.

Run by the gateway (``environments.py``) as ``ENV/bin/python worker_main.py MODEL_DIR IN_FD OUT_FD``
with the interpreter of the environment built from the model's requirements. It imports only the
standard library, numpy, pandas and MLflow (all in that environment), never Pave: Pave is not
installed there.

Frames on the two pipes: ``<uint32 json length><uint32 data length><json><data>``. A request's
JSON is ``{"kind": "matrix"|"frame"|"tensor"|"tensors", "arrays": [{"name", "datatype", "shape",
"size"}]}`` and its data the arrays' raw bytes back to back (little-endian, row-major; BYTES as
4-byte length-prefixed UTF-8), the layout of the OIP binary extension: nothing is pickled on the
wire. An answer is ``{"ok": true, "arrays": [...]}`` with the outputs, or ``{"ok": false,
"error", "type"}``. The first frame the worker writes says it is ready (``{"ok": true,
"flavor"}``) or why it failed to load. Anything the model prints goes to stderr (the gateway's
log), never into the frames.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from typing import Any, BinaryIO

import numpy as np

DTYPES = {
    "BOOL": "|b1",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], bytes] | None:
    head = stream.read(8)
    if len(head) < 8:
        return None
    json_length, data_length = struct.unpack("<II", head)
    document = json.loads(stream.read(json_length))
    return document, stream.read(data_length)


def write_frame(stream: BinaryIO, document: dict[str, Any], data: bytes = b"") -> None:
    encoded = json.dumps(document).encode()
    stream.write(struct.pack("<II", len(encoded), len(data)) + encoded + data)
    stream.flush()


def decode(specs: list[dict[str, Any]], data: bytes) -> dict[str, np.ndarray]:
    arrays, offset = {}, 0
    for spec in specs:
        raw = data[offset : offset + spec["size"]]
        offset += spec["size"]
        if spec["datatype"] == "BYTES":
            values, at = [], 0
            while at < len(raw):
                (length,) = struct.unpack_from("<I", raw, at)
                values.append(raw[at + 4 : at + 4 + length].decode("utf-8"))
                at += 4 + length
            array = np.empty(len(values), dtype=object)
            array[:] = values
        else:
            array = np.frombuffer(raw, dtype=DTYPES[spec["datatype"]])
        arrays[spec["name"]] = array.reshape(spec["shape"])
    return arrays


def encode(arrays: dict[str, np.ndarray]) -> tuple[list[dict[str, Any]], bytes]:
    specs, parts = [], []
    for name, array in arrays.items():
        array = np.asarray(array)
        datatype = datatype_of(array)
        if datatype == "BYTES":
            chunks = []
            for value in array.ravel().tolist():
                encoded = value if isinstance(value, bytes) else str(value).encode("utf-8")
                chunks.append(struct.pack("<I", len(encoded)) + encoded)
            raw = b"".join(chunks)
        else:
            raw = np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()
        specs.append({"name": name, "datatype": datatype, "shape": list(array.shape), "size": len(raw)})
        parts.append(raw)
    return specs, b"".join(parts)


def datatype_of(array: np.ndarray) -> str:
    kind, size = array.dtype.kind, array.dtype.itemsize * 8
    if kind == "b":
        return "BOOL"
    if kind in "iuf":
        return {"i": "INT", "u": "UINT", "f": "FP"}[kind] + str(size)
    return "BYTES"


class Model:
    """The model, called as the gateway's native paths call it (predict and predict_proba)."""

    def __init__(self, path: str) -> None:
        from mlflow.models import Model as MlflowModel

        flavors = MlflowModel.load(path).flavors
        self.flavor = "sklearn" if "sklearn" in flavors else "pyfunc"
        self.proba = None
        if self.flavor == "sklearn":
            import mlflow.sklearn

            estimator = mlflow.sklearn.load_model(path)
            self.predict_fn = estimator.predict
            if hasattr(estimator, "classes_") and callable(getattr(estimator, "predict_proba", None)):
                self.proba = estimator.predict_proba
        else:
            import mlflow.pyfunc

            self.predict_fn = mlflow.pyfunc.load_model(path).predict

    def predict(self, kind: str, arrays: dict[str, np.ndarray], output: str) -> dict[str, np.ndarray]:
        if kind == "frame":
            import pandas as pd

            features: Any = pd.DataFrame(arrays)
        elif kind in ("matrix", "tensor"):
            features = next(iter(arrays.values()))
        else:
            features = arrays
        outputs = as_outputs(self.predict_fn(features), output)
        if self.proba is not None:
            outputs["predict_proba"] = np.asarray(self.proba(features))
        return outputs


def as_outputs(result: Any, default_name: str) -> dict[str, np.ndarray]:
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        if result.shape[1] == 1:
            return {default_name: result.iloc[:, 0].to_numpy()}
        return {str(c): result[c].to_numpy() for c in result.columns}
    if isinstance(result, pd.Series):
        return {default_name: result.to_numpy()}
    if isinstance(result, dict):
        return {str(k): np.asarray(v) for k, v in result.items()}
    return {default_name: np.asarray(result)}


def main() -> None:
    path, in_fd, out_fd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sys.stdout = sys.stderr  # a model that prints must not write into the frames
    requests = os.fdopen(in_fd, "rb")
    answers = os.fdopen(out_fd, "wb")
    try:
        model = Model(path)
    except Exception as exc:
        write_frame(answers, {"ok": False, "error": f"{type(exc).__name__}: {exc}", "type": "load"})
        return
    write_frame(answers, {"ok": True, "flavor": model.flavor, "python": sys.version.split()[0]})
    while (frame := read_frame(requests)) is not None:
        document, data = frame
        try:
            outputs = model.predict(document["kind"], decode(document["arrays"], data), document["output"])
            specs, raw = encode(outputs)
        except Exception as exc:
            write_frame(answers, {"ok": False, "error": str(exc), "type": type(exc).__name__})
            continue
        write_frame(answers, {"ok": True, "arrays": specs}, raw)


if __name__ == "__main__":
    main()
