"""The reader of the challenge files: real quirks are kept, every bad input is named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rakuten_assets.data.challenge_files import (
    X_TEST_FILE,
    X_TRAIN_FILE,
    Y_TRAIN_FILE,
    ChallengeFileError,
    read_test_set,
    read_training_set,
    write_challenge_files,
)


def test_reads_the_hand_written_files_with_their_quirks(challenge_fixture_dir: Path) -> None:
    training = read_training_set(challenge_fixture_dir)
    frame = training.frame

    assert len(training) == 9
    assert list(frame.index) == list(range(9))
    assert list(frame.columns) == [
        "productid",
        "imageid",
        "designation",
        "description",
        "prdtypecode",
    ]
    assert frame.loc[0, "productid"] == 3804725264  # above 2**31: stored as int64
    assert frame.loc[1, "prdtypecode"] == 2280
    # empty description -> missing, not an empty string
    assert frame.loc[0, "description"] is None
    # text as it came: HTML, entities and mojibake are not cleaned here
    assert "<br />" in frame.loc[2, "description"]
    assert "&amp;" in frame.loc[2, "description"]
    assert "id&eacute;es" in frame.loc[4, "description"]
    assert "<li>" in frame.loc[5, "description"]
    assert "livrÃ©e" in frame.loc[6, "description"]
    assert '"sans outils"' in frame.loc[6, "description"]
    # a quoted description spanning two lines stays one record
    assert frame.loc[7, "description"].count("\n") == 1
    assert frame.loc[8, "designation"] == frame.loc[8, "description"]
    assert set(training.source_hashes) == {X_TRAIN_FILE, Y_TRAIN_FILE}


def test_reads_the_optional_test_file(challenge_fixture_dir: Path) -> None:
    test = read_test_set(challenge_fixture_dir)
    assert test is not None
    assert list(test.index) == [84916, 84917]
    (challenge_fixture_dir / X_TEST_FILE).unlink()
    assert read_test_set(challenge_fixture_dir) is None


def test_write_then_read_gives_back_the_same_rows(tmp_path: Path, challenge_fixture_dir) -> None:
    original = read_training_set(challenge_fixture_dir).frame
    x = original[["designation", "description", "productid", "imageid"]]
    y = original[["prdtypecode"]]
    write_challenge_files(tmp_path, x, y, None)

    header = (tmp_path / X_TRAIN_FILE).read_text(encoding="utf-8").splitlines()[0]
    assert header == ",designation,description,productid,imageid"
    assert (tmp_path / Y_TRAIN_FILE).read_text().splitlines()[0] == ",prdtypecode"
    pd.testing.assert_frame_equal(read_training_set(tmp_path).frame, original)


def _replace_line(path: Path, line: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[line - 1] = new
    path.write_text("\n".join(lines), encoding="utf-8")


def _error(directory: Path) -> ChallengeFileError:
    with pytest.raises(ChallengeFileError) as info:
        read_training_set(directory)
    return info.value


def test_missing_file_is_named(challenge_fixture_dir: Path) -> None:
    (challenge_fixture_dir / Y_TRAIN_FILE).unlink()
    error = _error(challenge_fixture_dir)
    assert error.path.name == Y_TRAIN_FILE
    assert "not found" in str(error)


def test_missing_column(challenge_fixture_dir: Path) -> None:
    path = challenge_fixture_dir / X_TRAIN_FILE
    _replace_line(path, 1, ",designation,description,productid,image_id")
    error = _error(challenge_fixture_dir)
    assert (error.path.name, error.line, error.column) == (X_TRAIN_FILE, 1, "imageid")
    assert "missing column" in str(error)


def test_non_integer_productid_names_line_and_column(challenge_fixture_dir: Path) -> None:
    path = challenge_fixture_dir / X_TRAIN_FILE
    _replace_line(path, 5, "3,Peluche Donald,,5041875a,457047496")
    error = _error(challenge_fixture_dir)
    assert (error.path.name, error.line, error.column) == (X_TRAIN_FILE, 5, "productid")
    assert "'5041875a'" in str(error)


def test_line_numbers_count_multi_line_records(challenge_fixture_dir: Path) -> None:
    # record 8 starts on line 11 because record 7's description spans lines 9-10
    path = challenge_fixture_dir / X_TRAIN_FILE
    _replace_line(path, 11, "8,Chaussettes Bébé,,1732347890,-12")
    error = _error(challenge_fixture_dir)
    assert (error.line, error.column) == (11, "imageid")


def test_duplicate_productid_names_both_lines(challenge_fixture_dir: Path) -> None:
    path = challenge_fixture_dir / X_TRAIN_FILE
    _replace_line(path, 5, "3,Peluche Donald,,436067568,457047496")
    error = _error(challenge_fixture_dir)
    assert (error.line, error.column) == (5, "productid")
    assert "first seen on line 3" in str(error)


def test_label_outside_the_27_codes(challenge_fixture_dir: Path) -> None:
    _replace_line(challenge_fixture_dir / Y_TRAIN_FILE, 4, "2,51")
    error = _error(challenge_fixture_dir)
    assert (error.path.name, error.line, error.column) == (Y_TRAIN_FILE, 4, "prdtypecode")
    assert "label 51" in str(error)


def test_non_integer_label(challenge_fixture_dir: Path) -> None:
    _replace_line(challenge_fixture_dir / Y_TRAIN_FILE, 2, "0,livres")
    error = _error(challenge_fixture_dir)
    assert (error.path.name, error.line, error.column) == (Y_TRAIN_FILE, 2, "prdtypecode")


def test_x_and_y_of_different_lengths(challenge_fixture_dir: Path) -> None:
    path = challenge_fixture_dir / Y_TRAIN_FILE
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    error = _error(challenge_fixture_dir)
    assert "has 9 rows" in str(error) and "has 8" in str(error)
    assert error.path.name == X_TRAIN_FILE
    assert error.line == 11  # X's ninth record, the one without a label


def test_x_and_y_with_different_indexes(challenge_fixture_dir: Path) -> None:
    _replace_line(challenge_fixture_dir / Y_TRAIN_FILE, 5, "30,1280")
    error = _error(challenge_fixture_dir)
    assert (error.path.name, error.line, error.column) == (Y_TRAIN_FILE, 5, "index")
    assert "index 30 does not match index 3" in str(error)


def test_undecodable_bytes_name_line_and_column(challenge_fixture_dir: Path) -> None:
    path = challenge_fixture_dir / X_TRAIN_FILE
    raw = path.read_bytes().replace(b"Peluche Donald", b"Peluche \xff Donald")
    path.write_bytes(raw)
    error = _error(challenge_fixture_dir)
    assert (error.path.name, error.line, error.column) == (X_TRAIN_FILE, 5, "designation")
    assert "not valid UTF-8" in str(error)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file(challenge_fixture_dir: Path, content: bytes) -> None:
    (challenge_fixture_dir / X_TRAIN_FILE).write_bytes(content)
    error = _error(challenge_fixture_dir)
    assert (error.path.name, error.line) == (X_TRAIN_FILE, 1)
    assert "empty" in str(error)


def test_header_without_rows(challenge_fixture_dir: Path) -> None:
    (challenge_fixture_dir / Y_TRAIN_FILE).write_text(",prdtypecode\n")
    error = _error(challenge_fixture_dir)
    assert error.path.name == Y_TRAIN_FILE
    assert "no rows" in str(error)


def test_malformed_csv_row(challenge_fixture_dir: Path) -> None:
    _replace_line(challenge_fixture_dir / X_TRAIN_FILE, 3, "1,a,b,436067568,1008141237,extra")
    error = _error(challenge_fixture_dir)
    assert error.line == 3
    assert "malformed CSV" in str(error)
