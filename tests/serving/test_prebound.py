"""A schema's own decoder gives what the general parse and bind give, or steps aside for them."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from pave.errors import InvalidInput
from pave.serving.protocol import parse_request
from pave.serving.schema import Column, InputSchema

SCHEMA = InputSchema(
    kind="matrix",
    columns=(Column("mean radius", "FP64", True), Column("b", "FP64", True), Column("c", "FP64", True)),
    order=("c", "mean radius", "b"),  # the estimator's order differs from the signature's
)
NAMES = ("mean radius", "b", "c")


def _body(values=(17.99, 2, -0.5), names=NAMES, compact=False, **extra) -> bytes:
    pairs = zip(names, values, strict=True)
    inputs = [{"name": n, "datatype": "FP64", "shape": [1], "data": [v]} for n, v in pairs]
    doc = {"inputs": inputs, **extra}
    return orjson.dumps(doc) if compact else json.dumps(doc).encode()


def _general(body: bytes, schema: InputSchema = SCHEMA):
    request = parse_request(body)
    features, rows = schema.bind(request.inputs)
    return request, features, rows


def _same(body: bytes) -> None:
    decoded = SCHEMA.decoder.decode(body)
    assert decoded is not None, body
    request, features, rows = _general(body)
    bound, n = SCHEMA.bind_request(decoded)
    assert n == rows == 1
    assert bound.dtype == features.dtype
    assert bound.shape == features.shape
    assert bound.tobytes() == features.tobytes()  # bit for bit (signed zeros, last digits)
    for field in ("parameters", "outputs", "id_given", "binary_outputs"):
        assert getattr(decoded, field) == getattr(request, field), field
    if request.id_given:
        assert decoded.id == request.id


@pytest.mark.parametrize(
    "body",
    [
        _body(),
        _body(compact=True),
        _body(outputs=[{"name": "predict"}]),
        _body(id="req-1", parameters={"binary_data_output": True}),
        _body(values=(0, -0.0, 1e-7)),
        _body(values=(123456789012345, 0.1 + 0.2, 2.5e99)),
        _body(values=(9.99e99, 1e-99, -3.0)),
        _body(values=(1, 2, 3)).replace(b'"data": [1]', b'"data": [-0]'),  # orjson: the integer 0
        _body(values=(1, 2, 3)).replace(b'"data": [1]', b'"data": [123456789012345678901234567]'),
        _body(values=(1, 2, 3)).replace(b'"data": [1]', b'"data": [ 1.0e+2 ]'),
        _body(parameters={"data": 1}, outputs=[{"name": "p", "parameters": {"data": "x"}}]),
        b'{"id":"x","inputs":[{"name":"mean radius","datatype":"FP64","shape":[1],"data":[1.0]},'
        b'{"name":"b","datatype":"FP64","shape":[1],"data":[2E+2]},'
        b'{"name":"c","datatype":"FP64","shape":[1],"data":[3.25e-01]}],"outputs":[]}',
    ],
)
def test_the_decoder_equals_the_general_path(body):
    _same(body)


@pytest.mark.parametrize(
    "body",
    [
        _body(names=("b", "mean radius", "c")),  # another order
        _body(values=(1, 2, 3)).replace(b'"shape": [1]', b'"shape": [1, 1]', 1),
        _body(values=(1, 2, 3)).replace(b'"datatype": "FP64"', b'"datatype": "FP32"', 1),
        _body(values=(1, 2, 3)).replace(b"mean radius", b"mean\\u0020radius"),
        json.dumps(orjson.loads(_body()), indent=2).encode(),  # another layout
        _body(values=(1, 2, 3)).replace(b'"datatype": "FP64", ', b'"datatype" : "FP64", ', 1),
        _body(values=(1, 2, 3)).replace(b'"data": [1]', b'"data": [1e400]'),
        _body(values=(1, 2, 3)).replace(b'"data": [1]', b'"data": []'),
        _body(values=(1, 2, 3)).replace(b'"data": [1]', b'"data": [[1]]'),
        _body(values=(1, 2, 3)).replace(b'"data": [1]', b'"data": ["1"]'),
        _body(values=(1, 2, 3)).replace(b'"data": [1]', b'"data": [true]'),
        _body(values=(1, 2, 3)).replace(b'"data": [1]', b'"data": [1, 2]'),
        _body(values=(1, 2, 3)).replace(b'"FP64", "shape"', b'"FP64", "parameters": {}, "shape"', 1),
        _body(values=(1, 2, 3)) + b" x",  # not JSON once the inputs are cut out
        b'{"outputs": [{"name": "p", "x": ' + _body() + b"}], " + b'"inputs": []}',  # nested, two "inputs"
        b'{"parameters": ' + _body() + b"}",  # the inputs array of a nested object only
        b"[" + _body() + b"]",
        b'{"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}]}',
    ],
)
def test_anything_else_is_left_to_the_general_path(body):
    assert SCHEMA.decoder.decode(body) is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"id": 5}, "'id' must be a string"),
        ({"parameters": 5}, "'parameters' must be an object"),
        ({"outputs": [{"nom": "p"}]}, "'outputs' must be a list"),
    ],
)
def test_a_malformed_rest_of_the_body_gets_the_general_paths_refusal(extra, message):
    body = _body(**extra)
    with pytest.raises(InvalidInput, match=message) as general:
        parse_request(body)
    with pytest.raises(InvalidInput) as decoded:
        SCHEMA.decoder.decode(body)
    assert str(decoded.value) == str(general.value)


def test_a_version_of_another_schema_gets_the_plain_inputs_and_the_same_one_a_copy():
    other = InputSchema(kind="frame", columns=SCHEMA.columns, order=NAMES)
    body = _body(values=(1.5, 2, 3))
    decoded = SCHEMA.decoder.decode(body)
    first, _ = SCHEMA.bind_request(decoded)
    again, _ = SCHEMA.bind_request(decoded)  # the shadow's: its own array
    assert again is not first
    assert again.tolist() == first.tolist() == [[3.0, 1.5, 2.0]]
    frame, rows = other.bind_request(decoded)
    expected, _ = other.bind(parse_request(body).inputs)
    assert rows == 1
    assert frame.equals(expected)
    assert decoded.prebound is None
    assert decoded.inputs == parse_request(body).inputs


def test_only_a_matrix_of_plain_fp64_names_has_a_decoder():
    assert InputSchema(kind="frame", columns=SCHEMA.columns, order=NAMES).decoder is None
    ints = (Column("a", "INT64", True), Column("b", "FP64", True))
    assert InputSchema(kind="matrix", columns=ints, order=("a", "b")).decoder is None
    quoted = (Column('a"b', "FP64", True), Column("c", "FP64", True))
    assert InputSchema(kind="matrix", columns=quoted, order=('a"b', "c")).decoder is None
    assert np.isfinite(SCHEMA.decoder.decode(_body()).prebound.matrix).all()


def test_the_gateway_answers_and_logs_the_decoded_request_as_the_general_one(make_client, models):
    from serving_kit import columns_request

    from pave.serving.inference_log import read_inference_log

    client, gateway, _ = make_client()
    row = models.X.iloc[[7]]
    schema = gateway.table.entries["cancer"].runtimes["1"].model.schema
    own = json.dumps(columns_request(row, id="own", outputs=[{"name": "predict_proba"}])).encode()
    general = own.replace(b'"own"', b'"general"').replace(b'"mean radius"', b'"mean\\u0020radius"')
    assert schema.decoder.decode(own) is not None
    assert schema.decoder.decode(general) is None
    answers = [client.post("/v2/models/cancer/infer", content=body) for body in (own, general)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].content == answers[1].content.replace(b'"general"', b'"own"')
    expected = models.estimators["1"].predict_proba(row).ravel().tolist()
    assert answers[0].json()["outputs"][0]["data"] == expected
    bad_ids = (own.replace(b'"own"', b"5"), general.replace(b'"general"', b"5"))
    refusals = [client.post("/v2/models/cancer/infer", content=body) for body in bad_ids]
    assert [r.status_code for r in refusals] == [400, 400]
    assert refusals[0].json() == refusals[1].json() == {"error": "'id' must be a string"}
    gateway.inference_log.flush()
    log = read_inference_log(gateway.inference_log.directory).set_index("id")
    assert log.loc["own", "inputs"] == log.loc["general", "inputs"]
    assert log.loc["own", "outputs"] == log.loc["general", "outputs"]
