"""The reader of the challenge files: real quirks are kept, every bad input is named."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from rakuten_assets.data.challenge_files import (
    MAX_FIELD_CHARS,
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


def _read_test_error(directory: Path) -> ChallengeFileError:
    with pytest.raises(ChallengeFileError) as info:
        read_test_set(directory)
    return info.value


def _where(error: ChallengeFileError) -> tuple[str, int | None, str | None]:
    return error.path.name, error.line, error.column


def test_legal_quoting_is_kept_exactly_with_crlf_line_ends(challenge_fixture_dir: Path) -> None:
    # Windows line ends, an empty quoted field, doubled quotes at the edges of a field and a
    # quote inside an unquoted field are all legal CSV and must come back character for character.
    path = challenge_fixture_dir / X_TRAIN_FILE
    _replace_line(path, 2, '0,"Olivia: Notizbuch","",3804725264,1263597046')
    _replace_line(path, 5, '3,"""Peluche"" Donald",Ecran 24" plat,50418756,457047496')
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    frame = read_training_set(challenge_fixture_dir).frame
    assert frame.loc[0, "designation"] == "Olivia: Notizbuch"
    assert frame.loc[0, "description"] is None
    assert frame.loc[3, "designation"] == '"Peluche" Donald'
    assert frame.loc[3, "description"] == 'Ecran 24" plat'
    assert frame.loc[7, "description"] == (
        "Carte en très bon état.\r\nVendue sous protège-carte, envoi soigné."
    )
    assert frame.loc[6, "description"].endswith('Montage facile "sans outils".')
    assert frame.loc[8, "imageid"] == 1264287321


@pytest.mark.parametrize(
    ("line", "content", "column"),
    [
        (5, "3,Peluche\0 Donald,,50418756,457047496", "designation"),
        (2, "0,Olivia,\0,3804725264,1263597046", "description"),
        # the second line of record 7's quoted description: the line of the NUL is named
        (10, 'Vendue sous protège-carte\0, envoi soigné.",2155424567,1304387331', "description"),
    ],
)
def test_nul_character_is_rejected_not_truncated(
    challenge_fixture_dir: Path, line: int, content: str, column: str
) -> None:
    # pandas' C parser silently cut the field at the NUL; PostgreSQL cannot store it either
    _replace_line(challenge_fixture_dir / X_TRAIN_FILE, line, content)
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, line, column)
    assert "NUL" in str(error)


def test_nul_character_in_the_labels_is_rejected(challenge_fixture_dir: Path) -> None:
    _replace_line(challenge_fixture_dir / Y_TRAIN_FILE, 4, "2,50\0")
    error = _error(challenge_fixture_dir)
    assert _where(error) == (Y_TRAIN_FILE, 4, "prdtypecode")


@pytest.mark.parametrize(
    ("line", "content", "error_line", "column"),
    [
        # text after the closing quote: pandas glued it on ('Peluche Donald - Europe')
        (5, '3,"Peluche Donald" - Europe,,50418756,457047496', 5, "designation"),
        # an opening quote closed by the next record's quote: the designation swallows a line
        (5, '3,"Peluche Donald,,50418756,457047496', 5, "designation"),
        # closed in mid-description: the designation swallows half of the description
        (6, '4,"La Guerre Des Tuques,"Luc a des idées.",278535884,1077757786', 6, "designation"),
        # a quote never closed before the end of the file: named where the record starts
        (11, '8,"Lot De 3 Paires,,1732347890,1264287321', 11, "designation"),
        (10, "Vendue sous protège-carte, envoi soigné.,2155424567,1304387331", 9, "description"),
    ],
)
def test_unbalanced_quote_is_rejected_where_the_record_starts(
    challenge_fixture_dir: Path, line: int, content: str, error_line: int, column: str
) -> None:
    _replace_line(challenge_fixture_dir / X_TRAIN_FILE, line, content)
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, error_line, column)
    assert "quote" in str(error)


def test_quote_swallowing_the_rest_of_the_line_gives_a_wrong_field_count(
    challenge_fixture_dir: Path,
) -> None:
    # balanced quotes, but the separators are inside them: two fields where five are expected
    _replace_line(challenge_fixture_dir / X_TRAIN_FILE, 5, '3,"Peluche Donald,,50418756,457047496"')
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, 5, "description")
    assert "malformed CSV" in str(error) and "2 fields" in str(error)


def test_too_many_fields_names_the_last_column(challenge_fixture_dir: Path) -> None:
    _replace_line(challenge_fixture_dir / X_TRAIN_FILE, 3, "1,a,b,436067568,1008141237,extra")
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, 3, "imageid")
    assert "6 fields" in str(error)


def test_field_above_the_csv_default_limit_then_a_later_error(challenge_fixture_dir: Path) -> None:
    # 200,000 characters is past the csv module's default 131,072: the later error must still
    # be named instead of a bare `_csv.Error: field larger than field limit`
    path = challenge_fixture_dir / X_TRAIN_FILE
    _replace_line(path, 3, f'1,Journal,"{"x" * 200_000}",436067568,1008141237')
    _replace_line(path, 5, "3,Peluche Donald,,5041875a,457047496")
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, 5, "productid")


def test_large_field_is_kept_whole(challenge_fixture_dir: Path) -> None:
    before = csv.field_size_limit()
    _replace_line(challenge_fixture_dir / X_TRAIN_FILE, 3, f'1,Journal,"{"é" * 200_000}",1,2')
    frame = read_training_set(challenge_fixture_dir).frame
    assert frame.loc[1, "description"] == "é" * 200_000
    assert csv.field_size_limit() == before  # the process-wide csv limit is left as it was


def test_field_beyond_the_size_bound_is_named(challenge_fixture_dir: Path) -> None:
    path = challenge_fixture_dir / X_TRAIN_FILE
    _replace_line(path, 11, f'8,Lot,"{"x" * (MAX_FIELD_CHARS + 1)}",1732347890,1264287321')
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, 11, "description")
    assert "longer than" in str(error)


@pytest.mark.parametrize(
    ("value", "column", "content"),
    [
        ("12345678901234567890123", "productid", "3,Peluche,,{},457047496"),
        ("9223372036854775808", "productid", "3,Peluche,,{},457047496"),  # 2**63
        ("99999999999999999999", "imageid", "3,Peluche,,50418756,{}"),
        ("10000000000000000000000", "index", "{},Peluche,,50418756,457047496"),
    ],
)
def test_integer_beyond_int64_is_rejected(
    challenge_fixture_dir: Path, value: str, column: str, content: str
) -> None:
    _replace_line(challenge_fixture_dir / X_TRAIN_FILE, 5, content.format(value))
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, 5, column)
    assert value in str(error) and "64-bit" in str(error)


def test_largest_int64_is_accepted(challenge_fixture_dir: Path) -> None:
    _replace_line(challenge_fixture_dir / X_TRAIN_FILE, 5, "3,Peluche,,9223372036854775807,1")
    assert read_training_set(challenge_fixture_dir).frame.loc[3, "productid"] == 2**63 - 1


@pytest.mark.parametrize("digits", ["５０４１８７５６", "٥٠٤١٨٧٥٦"])  # full-width, Arabic-Indic
def test_non_ascii_digits_are_not_integers(challenge_fixture_dir: Path, digits: str) -> None:
    _replace_line(challenge_fixture_dir / X_TRAIN_FILE, 5, f"3,Peluche,,{digits},457047496")
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, 5, "productid")
    assert repr(digits) in str(error)


def test_non_ascii_digits_in_a_label_are_not_integers(challenge_fixture_dir: Path) -> None:
    _replace_line(challenge_fixture_dir / Y_TRAIN_FILE, 4, "2,５０")
    error = _error(challenge_fixture_dir)
    assert _where(error) == (Y_TRAIN_FILE, 4, "prdtypecode")


@pytest.mark.parametrize("designation", ["", "   ", '""', '" \t "', "\u3000"])
def test_empty_designation_is_rejected_by_the_reader(
    challenge_fixture_dir: Path, designation: str
) -> None:
    # caught here, before anything is written, not by an asset check after the commit
    _replace_line(challenge_fixture_dir / X_TRAIN_FILE, 5, f"3,{designation},,50418756,1")
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, 5, "designation")
    assert "empty designation" in str(error)


def test_empty_designation_in_the_test_file_is_rejected(challenge_fixture_dir: Path) -> None:
    _replace_line(challenge_fixture_dir / X_TEST_FILE, 3, "84917, ,,133389013,1274228667")
    error = _read_test_error(challenge_fixture_dir)
    assert _where(error) == (X_TEST_FILE, 3, "designation")


def test_unbalanced_quote_in_the_test_file_is_rejected(challenge_fixture_dir: Path) -> None:
    _replace_line(challenge_fixture_dir / X_TEST_FILE, 2, '84916,"Folkmanis" Puppets,,1,2')
    error = _read_test_error(challenge_fixture_dir)
    assert _where(error) == (X_TEST_FILE, 2, "designation")


def test_blank_lines_do_not_shift_line_numbers(challenge_fixture_dir: Path) -> None:
    # pandas skips blank lines; the line of a later record must still be its real line
    path = challenge_fixture_dir / X_TRAIN_FILE
    _replace_line(path, 3, "\n1,Journal,,436067568,1008141237")  # record 1 is now on line 4
    _replace_line(path, 6, "3,Peluche Donald,,5041875a,457047496")
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, 6, "productid")


def test_unbalanced_quote_in_the_header(challenge_fixture_dir: Path) -> None:
    _replace_line(
        challenge_fixture_dir / X_TRAIN_FILE, 1, ',designation,"description,productid,imageid'
    )
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, 1, "description")
    assert "quote" in str(error)


def test_carriage_return_in_an_unquoted_field(challenge_fixture_dir: Path) -> None:
    # pandas split the record there; a line break inside a field is only legal within quotes
    _replace_line(challenge_fixture_dir / X_TRAIN_FILE, 5, "3,Peluche\rDonald,,50418756,1")
    error = _error(challenge_fixture_dir)
    assert _where(error) == (X_TRAIN_FILE, 5, "designation")
    assert "carriage return" in str(error)


@pytest.mark.parametrize(
    ("quote_line", "nul_line", "expected"),
    [(3, 5, (3, "designation", "quote")), (5, 3, (3, "description", "NUL"))],
)
def test_the_first_of_a_nul_and_a_bad_quote_is_reported(
    challenge_fixture_dir: Path, quote_line: int, nul_line: int, expected: tuple[int, str, str]
) -> None:
    path = challenge_fixture_dir / X_TRAIN_FILE
    _replace_line(path, quote_line, f'{quote_line - 2},"Article" bleu,,1{quote_line},2')
    _replace_line(path, nul_line, f"{nul_line - 2},Article,bleu\0,1{nul_line},2")
    error = _error(challenge_fixture_dir)
    line, column, word = expected
    assert _where(error) == (X_TRAIN_FILE, line, column)
    assert word in str(error)
