"""A careless user's batch jobs: each mistake is one clear error, said before any scoring, and
nothing already stored (the input) is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Models
from pave.errors import InvalidInput, NotFound
from pave.serving.batch import BatchResult, score_table
from pave.serving.batch_io import local_input, refuse_overwriting_input, split_uri, staged_output


def test_an_empty_csv_input_is_refused_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "in.csv"
    empty.write_text("")
    with pytest.raises(InvalidInput, match=r"in\.csv is empty"), local_input(str(empty), tmp_path):
        pass


def test_a_file_that_is_not_parquet_is_refused_naming_the_format(tmp_path: Path) -> None:
    garbage = tmp_path / "in.parquet"
    garbage.write_text("not a table\n")
    with (
        pytest.raises(InvalidInput, match="cannot be read as parquet") as caught,
        local_input(str(garbage), tmp_path),
    ):
        pass
    assert "parquet file" in (caught.value.hint or "")


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path: Path) -> None:
    table = tmp_path / "in.csv"
    table.write_text("a,b\n1,2\n")
    # the same file by another spelling: refused before the registry is even asked
    with pytest.raises(InvalidInput, match="would replace the input"):
        score_table(
            "churn",
            input_uri=str(table),
            output_uri=str(tmp_path / "." / "in.csv"),
            tracking_uri="http://127.0.0.1:9",
            cache_dir=tmp_path / "cache",
        )
    assert table.read_text() == "a,b\n1,2\n"
    with pytest.raises(InvalidInput, match="would replace the input"):
        refuse_overwriting_input(str(table), f"{tmp_path}/")  # a folder output holding the input
    with pytest.raises(InvalidInput, match="would replace the input"):
        refuse_overwriting_input("s3://b/in/x.csv", "s3://b/in/x.csv")
    refuse_overwriting_input(str(table), str(tmp_path / "out.csv"))
    refuse_overwriting_input("s3://b/in/x.csv", "s3://b/out/")


@pytest.mark.parametrize("output", ["/proc/pave-out.csv", "/proc/pave-out/", "{tmp}/in.csv/out.csv"])
def test_an_output_that_cannot_be_written_is_refused_before_scoring(tmp_path: Path, output: str) -> None:
    (tmp_path / "in.csv").write_text("a\n1\n")
    uri = output.format(tmp=tmp_path)
    kind = "dataset" if uri.endswith("/") else "csv"
    with pytest.raises(InvalidInput, match="cannot be written") as caught, staged_output(uri, kind, tmp_path):
        pass
    assert "folder you may write" in (caught.value.hint or "")


def test_another_object_store_is_named_as_unsupported() -> None:
    with pytest.raises(InvalidInput, match="not gs://"):
        split_uri("gs://bucket/x.csv")


def test_an_output_bucket_that_does_not_exist_is_said_before_scoring(s3: object, tmp_path: Path) -> None:
    for uri, kind in (("s3://no-such-bucket/out.csv", "csv"), ("s3://no-such-bucket/out/", "dataset")):
        with (
            pytest.raises(NotFound, match="bucket no-such-bucket does not exist") as caught,
            staged_output(uri, kind, tmp_path),
        ):
            pass
        assert "aws s3 mb s3://no-such-bucket" in (caught.value.hint or "")


def _score(models: Models, tmp_path: Path, source: Path, project: str = "cancer") -> BatchResult:
    return score_table(
        project,
        input_uri=str(source),
        output_uri=str(tmp_path / "out.csv"),
        tracking_uri=models.tracking_uri,
        cache_dir=tmp_path.parent / "batch-model-cache",
        version="1" if project == "cancer" else None,
    )


def test_text_in_a_numeric_column_is_named_with_its_line_and_value(models: Models, tmp_path: Path) -> None:
    frame = models.X.head(20).astype(object)
    frame.iloc[5, 3] = "abc"
    frame.to_csv(tmp_path / "in.csv", index=False)
    column = models.X.columns[3]
    with pytest.raises(InvalidInput, match=f"column '{column}' holds 'abc' on line 7, not a number"):
        _score(models, tmp_path, tmp_path / "in.csv")
    assert not (tmp_path / "out.csv").exists()


def test_a_csv_with_a_header_and_no_rows_scores_no_rows(models: Models, tmp_path: Path) -> None:
    models.X.head(0).to_csv(tmp_path / "in.csv", index=False)
    assert _score(models, tmp_path, tmp_path / "in.csv").rows == 0  # was: "holds BYTES"


def test_a_project_with_no_registered_model_is_named_as_such(models: Models, tmp_path: Path) -> None:
    models.X.head(3).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(NotFound, match="no model is registered as 'no-such-project'") as caught:
        _score(models, tmp_path, tmp_path / "in.csv", project="no-such-project")
    assert "`pave projects`" in (caught.value.hint or "")


def test_a_table_scored_before_is_refused_instead_of_scored_into_duplicate_columns(
    models: Models, tmp_path: Path
) -> None:
    models.X.head(5).to_csv(tmp_path / "in.csv", index=False)
    _score(models, tmp_path, tmp_path / "in.csv")
    (tmp_path / "out.csv").rename(tmp_path / "scored.csv")
    with pytest.raises(InvalidInput, match="that scoring adds: a table scored before") as caught:
        _score(models, tmp_path, tmp_path / "scored.csv")
    assert "model_version" in caught.value.message
    assert not (tmp_path / "out.csv").exists()


def test_a_tsv_input_is_read_with_tabs(models: Models, tmp_path: Path) -> None:
    models.X.head(7).to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    assert _score(models, tmp_path, tmp_path / "in.tsv").rows == 7  # was: every column "missing"


def test_an_empty_cell_the_model_cannot_take_is_named(models: Models, tmp_path: Path) -> None:
    frame = models.X.head(10).copy()
    frame.iloc[3, 2] = None
    frame.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InvalidInput, match=f"line 5, column '{models.X.columns[2]}' is empty") as caught:
        _score(models, tmp_path, tmp_path / "in.csv")
    assert "Input X contains NaN" in caught.value.message
    assert "\n" not in caught.value.message  # the model's own paragraph cut to its first line
