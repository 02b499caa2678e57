import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson

from pave.serving.inference_log import InferenceLog, Record, explode_rows, read_inference_log


def record(i, ts, deployment="m", shadow=False):
    return Record(
        id=f"r{i}",
        deployment=deployment,
        version="1",
        ts=ts,
        latency=0.001,
        inputs=np.array([[float(i), 1.0]]),
        columns=("a", "b"),
        outputs={"predict": np.array([i % 2])},
        shadow=shadow,
    )


def test_records_are_written_and_read_back_by_time_window(tmp_path):
    log = InferenceLog(tmp_path, max_bytes=400)  # tiny files: rotation by size is exercised
    log.start()
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    for i in range(20):
        log.record(record(i, base + i))
    log.record(record(99, base + 5, shadow=True))
    log.record(record(98, base + 5, deployment="other"))
    log.close()
    assert len(list(tmp_path.glob("inference-*.jsonl"))) > 1

    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=5)
    frame = read_inference_log(tmp_path, start, start + timedelta(seconds=10), deployment="m")
    assert frame["id"].tolist() == [f"r{i}" for i in range(5, 15)]
    assert frame["timestamp"].iloc[0] == start
    assert frame["inputs"].iloc[0] == {"a": [5.0], "b": [1.0]}
    assert frame["outputs"].iloc[0] == {"predict": [1]}

    with_shadow = read_inference_log(tmp_path, start, start + timedelta(seconds=1), include_shadow=True)
    assert sorted(with_shadow["id"]) == ["r5", "r98", "r99"]

    rows = explode_rows(frame)
    assert list(rows.columns) == ["id", "deployment", "version", "timestamp", "a", "b", "predict"]
    assert rows["a"].tolist() == [float(i) for i in range(5, 15)]


def test_sampling_rate_zero_logs_nothing_and_an_empty_log_reads_as_empty(tmp_path):
    log = InferenceLog(tmp_path, sample_rate=0.0)
    assert not any(log.sampled() for _ in range(100))
    frame = read_inference_log(tmp_path)
    assert frame.empty
    assert "timestamp" in frame.columns


def test_sampling_rate_is_roughly_honoured(tmp_path):
    log = InferenceLog(tmp_path, sample_rate=0.25)
    share = sum(log.sampled() for _ in range(4000)) / 4000
    assert 0.2 < share < 0.3


def test_a_full_queue_drops_instead_of_blocking(tmp_path):
    log = InferenceLog(tmp_path, max_queue=5)  # not started: nothing drains the queue
    for i in range(8):
        log.record(record(i, 0.0))
    assert log.dropped == 3


def test_flush_waits_for_a_batch_the_writer_has_taken_but_not_written(tmp_path):
    log = InferenceLog(tmp_path)
    taken, release = threading.Event(), threading.Event()
    write = log._write

    def slow_write(batch):  # the writer has taken the record off the queue and holds it here
        taken.set()
        release.wait(30)
        write(batch)

    log._write = slow_write
    log.start()
    log.record(record(1, 0.0))
    assert taken.wait(30)
    flushing = threading.Thread(target=log.flush)
    flushing.start()
    flushing.join(0.5)
    assert flushing.is_alive(), "flush returned while a queued record was not written yet"
    release.set()
    flushing.join(30)
    assert read_inference_log(tmp_path, datetime.fromtimestamp(0, UTC))["id"].tolist() == ["r1"]
    log.close()


def test_a_matrix_is_logged_by_column_as_each_column_alone_would_be():
    """The one-tolist() encoding of a matrix writes what encoding each column on its own writes,
    for float64, float32 (numpy's shortest repr kept), integers and booleans."""
    from pave.serving.inference_log import encode

    rng = np.random.default_rng(0)
    matrices = [
        rng.normal(size=(3, 4)),
        rng.normal(size=(3, 4)).astype(np.float32),
        rng.integers(-5, 5, size=(3, 4)),
        rng.integers(0, 2, size=(3, 4)).astype(bool),
        np.array([[0.1, 1e300, -0.0, 5e-324]]),
    ]
    columns = ("a", "b", "c", "d")
    for matrix in matrices:
        line = encode(Record("r", "m", "1", 1.0, 0.001, matrix, columns, {"predict": np.array([1])}))
        logged = orjson.loads(line)["inputs"]
        by_column = {
            name: orjson.loads(orjson.dumps(matrix[:, j].copy(), option=orjson.OPT_SERIALIZE_NUMPY))
            for j, name in enumerate(columns)
        }
        assert logged == by_column, matrix.dtype
        assert list(logged) == list(columns)


def test_a_burst_is_written_whole_and_in_order_across_size_rotations(tmp_path):
    """Several milliseconds of encoding (the writer yields the GIL many times) in one batch that
    spans several files."""
    log = InferenceLog(tmp_path, max_bytes=20_000)
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    count = 2003
    for i in range(count):  # queued before the writer starts: one batch
        log.record(record(i, base + i / 1000))
    log.start()
    log.flush()
    assert log.written == count
    log.close()
    files = sorted(tmp_path.glob("inference-*.jsonl"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert len(files) > 5
    assert all(path.stat().st_size <= 20_000 for path in files)
    ids = [orjson.loads(line)["id"] for path in files for line in path.read_bytes().splitlines()]
    assert ids == [f"r{i}" for i in range(count)]
    # each file is named by the time of its first record
    for path in files:
        first = orjson.loads(path.read_bytes().splitlines()[0])["ts"]
        stamp = datetime.fromtimestamp(first, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        assert path.name.startswith(f"inference-{stamp}-")


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path):
    log = InferenceLog(tmp_path, max_bytes=300)
    log.record(record(1, 1.0))
    big = record(2, 2.0)
    big.inputs = np.zeros((1, 100))
    big.columns = ()
    log.record(big)
    log.record(record(3, 3.0))
    log.start()
    log.close()
    files = sorted(tmp_path.glob("inference-*.jsonl"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert [[orjson.loads(line)["id"] for line in p.read_bytes().splitlines()] for p in files] == [
        ["r1"],
        ["r2"],
        ["r3"],
    ]
    assert files[1].stat().st_size > 300


def test_a_record_that_cannot_be_encoded_is_skipped_without_raising(tmp_path):
    class Broken:
        def __str__(self):
            raise RuntimeError("no text for this")

    log = InferenceLog(tmp_path)
    log.start()
    bad = record(1, 0.0)
    bad.inputs = {"x": [Broken()]}
    log.record(bad)  # does not raise into the request
    log.record(record(2, 0.0))
    log.flush()  # returns: the record that failed counts as done
    assert log.written == 1
    log.close()
    assert read_inference_log(tmp_path)["id"].tolist() == ["r2"]


def test_records_from_several_threads_without_an_event_loop_are_all_written(tmp_path):
    log = InferenceLog(tmp_path, max_bytes=50_000)
    log.start()

    def produce(offset):
        for i in range(500):
            log.record(record(offset + i, float(i)))

    threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.flush()
    log.close()
    ids = read_inference_log(tmp_path)["id"].tolist()
    assert sorted(ids) == sorted(f"r{k * 1000 + i}" for k in range(4) for i in range(500))
