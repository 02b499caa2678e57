import numpy as np
import orjson
import pytest

from pave.errors import InvalidInput
from pave.serving.protocol import decode_tensor, encode_response, parse_request


def tensor(**kw):
    item = {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]}
    item.update(kw)
    return item


def test_parse_request_keeps_the_id_and_generates_one_when_missing():
    given = parse_request(orjson.dumps({"id": "42", "inputs": [tensor()]}))
    generated = parse_request(orjson.dumps({"inputs": [tensor()]}))
    assert given.id == "42"
    assert given.id_given
    assert generated.id
    assert not generated.id_given


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "inputs"),
        (orjson.dumps({"inputs": [tensor(datatype="FP128")]}), "unknown datatype"),
        (orjson.dumps({"inputs": [tensor(shape=[-1, 2])]}), "shape"),
        (orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}), "no 'data'"),
        (orjson.dumps({"id": 7, "inputs": [tensor()]}), "'id'"),
        (orjson.dumps({"inputs": [tensor()], "outputs": ["a"]}), "'outputs'"),
    ],
)
def test_parse_request_rejects_malformed_requests(body, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        parse_request(body)


def test_decode_tensor_accepts_flat_and_nested_data():
    flat = decode_tensor(tensor())
    nested = decode_tensor(tensor(data=[[1, 2], [3, 4]]))
    assert flat.dtype == np.float32
    assert flat.shape == (2, 2)
    assert np.array_equal(flat, nested)


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        (tensor(data=[1, 2, 3]), "needs 4 values"),
        (tensor(data=["1", "2", "3", "4"]), "does not hold FP32"),
        (tensor(datatype="INT32", data=[1.5, 2, 3, 4]), "does not hold INT32"),
        (tensor(datatype="INT8", data=[1, 2, 3, 400]), "out of the INT8 range"),
        (tensor(datatype="BOOL", data=[1, 0, 1, 0]), "does not hold BOOL"),
        (tensor(datatype="BYTES", data=[1, 2, 3, 4]), "must be strings"),
        (tensor(data=[[1, 2], [3]]), "ragged|needs 4"),
        (tensor(data=[1, None, 3, 4]), "does not hold FP32"),
    ],
)
def test_decode_tensor_names_the_input_in_errors(item, fragment):
    with pytest.raises(InvalidInput, match=fragment) as info:
        decode_tensor(item)
    assert "'x'" in info.value.message


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("FP64", [0.5], np.float64),
        ("INT64", [3], np.int64),
        ("INT32", [3], np.int32),
        ("BOOL", [True], np.bool_),
        ("BYTES", ["a"], object),
    ],
)
def test_decode_tensor_datatypes(datatype, data, dtype):
    array = decode_tensor({"name": "x", "datatype": datatype, "shape": [1], "data": data})
    assert array.dtype == dtype
    assert array.tolist() == data


def test_encode_response_in_protocol_shape():
    outputs = {"predict": np.array([1, 0]), "predict_proba": np.array([[0.1, 0.9], [0.8, 0.2]])}
    doc = orjson.loads(encode_response("m", "3", "id-1", outputs, None))
    assert doc["model_name"] == "m"
    assert doc["model_version"] == "3"
    assert doc["id"] == "id-1"
    assert doc["outputs"][0] == {"name": "predict", "datatype": "INT64", "shape": [2], "data": [1, 0]}
    assert doc["outputs"][1]["shape"] == [2, 2]
    assert doc["outputs"][1]["data"] == [0.1, 0.9, 0.8, 0.2]


def test_encode_response_filters_requested_outputs():
    outputs = {"predict": np.array([1]), "predict_proba": np.array([[0.5, 0.5]])}
    doc = orjson.loads(encode_response("m", "1", "i", outputs, ["predict_proba"]))
    assert [o["name"] for o in doc["outputs"]] == ["predict_proba"]
    with pytest.raises(InvalidInput, match="unknown output 'nope'"):
        encode_response("m", "1", "i", outputs, ["nope"])


# --- many inputs (the template's one per column) are checked a field at a time for all of them -------


def _template_inputs(n=30):
    return [{"name": f"f{i}", "datatype": "FP64", "shape": [1], "data": [float(i)]} for i in range(n)]


@pytest.mark.parametrize(
    "bad",
    [
        ["not", "an", "object"],
        "f17",
        None,
        {"datatype": "FP64", "shape": [1], "data": [1.0]},  # no name
        {"name": "", "datatype": "FP64", "shape": [1], "data": [1.0]},
        {"name": 17, "datatype": "FP64", "shape": [1], "data": [1.0]},
        {"name": "f17", "datatype": "FP64", "shape": 1, "data": [1.0]},
        {"name": "f17", "datatype": "FP64", "shape": [True], "data": [1.0]},
        {"name": "f17", "datatype": "FP64", "shape": [1.0], "data": [1.0]},
        {"name": "f17", "datatype": "FP64", "shape": [-1], "data": [1.0]},
        {"name": "f17", "datatype": "DOUBLE", "shape": [1], "data": [1.0]},
        {"name": "f17", "datatype": ["FP64"], "shape": [1], "data": [1.0]},  # unhashable
        {"name": "f17", "shape": [1], "data": [1.0]},  # no datatype
        {"name": "f17", "datatype": "FP64", "data": [1.0]},  # no shape
        {"name": "f17", "datatype": "FP64", "shape": [1]},  # no data
        {"name": "f17", "datatype": "FP64", "shape": [1], "data": [1.0], "parameters": []},
    ],
)
def test_one_bad_input_among_many_gets_the_message_of_the_input_by_input_check(bad):
    from pave.serving.protocol import _check_input, _well_formed

    inputs = _template_inputs()
    inputs[17] = bad
    assert not _well_formed(inputs)
    with pytest.raises(InvalidInput) as expected:
        _check_input(bad, 17)
    with pytest.raises(InvalidInput) as got:
        parse_request(orjson.dumps({"inputs": inputs}))
    assert got.value.message == expected.value.message
    assert got.value.status_code == 400


def test_the_template_request_is_checked_in_one_pass_and_parameters_take_the_loop():
    from pave.serving.protocol import _well_formed

    inputs = _template_inputs()
    assert _well_formed(inputs)
    assert parse_request(orjson.dumps({"inputs": inputs})).inputs == inputs
    inputs[3]["parameters"] = {"content_type": "np"}
    assert not _well_formed(inputs)
    assert parse_request(orjson.dumps({"inputs": inputs})).inputs == inputs  # accepted by the loop
