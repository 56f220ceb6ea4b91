"""Read, validate and write the challenge files in their exact format.

`X_train_update.csv`: an unnamed index column, then `designation,description,productid,imageid`.
`Y_train_CVw08PX.csv`: an unnamed index column, then `prdtypecode` (joined to X on the index).
`X_test_update.csv`: like X, unlabelled, optional.

Validation errors name the file, the line and the column. Text is kept as it came (HTML,
entities and mojibake included): cleaning belongs to the training features.

Parsing is Python's `csv` in strict mode rather than pandas' lenient C parser, which silently
truncated fields at a NUL and glued text after a closing quote onto the field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rakuten_assets.data.categories import CODES

X_TRAIN_FILE = "X_train_update.csv"
Y_TRAIN_FILE = "Y_train_CVw08PX.csv"
X_TEST_FILE = "X_test_update.csv"
X_COLUMNS: tuple[str, ...] = ("designation", "description", "productid", "imageid")
Y_COLUMNS: tuple[str, ...] = ("prdtypecode",)
# The columns of a labelled listing as the rest of the project uses them.
LISTING_COLUMNS: tuple[str, ...] = ("productid", "imageid", "designation", "description")
LABELLED_COLUMNS: tuple[str, ...] = (*LISTING_COLUMNS, "prdtypecode")

# ASCII only: `\d` also matches full-width and other Unicode digits.
_INTEGER = r"[0-9]+"
_INT64_MAX = 2**63 - 1
# A sanity bound on one field; real descriptions stay far below it (csv's default is 131,072).
MAX_FIELD_CHARS = 4 * 1024 * 1024
# csv.field_size_limit is process-wide: raise it only while parsing, one parse at a time.
_FIELD_LIMIT_LOCK = threading.RLock()
_UNQUOTED_FIELD_END = re.compile(r"[,\r\n]")


class ChallengeFileError(ValueError):
    """A challenge file that cannot be used, with where the problem is."""

    def __init__(
        self, path: Path, message: str, line: int | None = None, column: str | None = None
    ):
        self.path = Path(path)
        self.line = line
        self.column = column
        self.reason = message
        where = self.path.name
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class TrainingSet:
    """The labelled listings, indexed by the challenge's row index, in file order."""

    frame: pd.DataFrame
    source_hashes: dict[str, str]

    def __len__(self) -> int:
        return len(self.frame)


@dataclass
class _CsvFile:
    path: Path
    frame: pd.DataFrame  # every column as str, the unnamed index column as `index`
    sha256: str
    # Quoted fields may span lines (and blank lines are skipped), so record i is not on i + 2.
    start_lines: list[int]

    def line_of(self, position: int) -> int:
        """1-based line on which the record at data position `position` starts."""
        return self.start_lines[position]


@contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    with _FIELD_LIMIT_LOCK:
        previous = csv.field_size_limit(limit)
        try:
            yield
        finally:
            csv.field_size_limit(previous)


def _column_name(names: Sequence[str], field: int) -> str | None:
    """The header's name for field `field`; past the header's end, its last column."""
    if not names:
        return None
    field = min(field, len(names) - 1)
    return "index" if field == 0 else names[field]


def _last_loose_record(text: str) -> list[str]:
    """The last record of `text` as a lenient reader splits it; only to name columns."""
    # a bare carriage return stops even the lenient reader; no field is longer than the text
    with _field_limit(len(text) + 1):
        last = deque(csv.reader(io.StringIO(text.replace("\r", " "))), maxlen=1)
    return last[0] if last else []


def _column_at(prefix: str, names: Sequence[str]) -> str | None:
    """The column of the field in which the character just after `prefix` falls."""
    # the "x" stands for that character, so a prefix ending on a separator counts
    return _column_name(names, len(_last_loose_record(prefix + "x")) - 1)


def _line_offset(text: str, line: int) -> int:
    offset = 0
    for _ in range(line - 1):
        offset = text.index("\n", offset) + 1
    return offset


def _quoting_problem(text: str, start: int) -> tuple[int, int, str] | None:
    """(field, offset, kind) of the first strict-CSV violation of the record at `start`.

    Mirrors the states of the csv module (strict, doubled quotes) only to name the field:
    the csv module says that a record is malformed, not where.
    """
    field, i, end = 0, start, len(text)
    while True:
        if text.startswith('"', i):
            opened, i, length = i, i + 1, 0
            while True:
                close = text.find('"', i)
                length += (end if close < 0 else close) - i
                if length > MAX_FIELD_CHARS:
                    return field, opened, "too long"
                if close < 0:
                    return field, opened, "unclosed"
                if not text.startswith('"', close + 1):
                    i = close + 1
                    break
                length, i = length + 1, close + 2  # a doubled quote stands for one
            if i < end and text[i] not in ",\r\n":
                return field, i, "after quote"
        else:
            match = _UNQUOTED_FIELD_END.search(text, i)
            stop = match.start() if match else end
            if stop - i > MAX_FIELD_CHARS:
                return field, i, "too long"
            i = stop
        if i >= end:
            return None
        if text[i] == ",":
            field, i = field + 1, i + 1
            continue
        # the record ends; up to the line feed only more carriage returns may follow
        line_end = text.find("\n", i)
        if text[i : end if line_end < 0 else line_end].strip("\r"):
            return field, i, "carriage return"
        return None


def _malformed(
    path: Path, text: str, names: Sequence[str], line: int, error: csv.Error
) -> ChallengeFileError:
    start = _line_offset(text, line)
    problem = _quoting_problem(text, start)
    if problem is None:  # not expected: the csv module and the scan disagree
        return ChallengeFileError(path, f"malformed CSV ({error})", line=line)
    field, offset, kind = problem
    at = line + text.count("\n", start, offset)
    on = "this line" if at == line else f"line {at}"
    reasons = {
        "too long": f"a field longer than {MAX_FIELD_CHARS:,} characters starts here "
        "(is a quote left open?)",
        "unclosed": "a quote opened here is never closed before the end of the file",
        "after quote": f"text follows the closing quote on {on} (a quote inside a quoted "
        'field must be doubled "", and a field with commas or line breaks quoted whole)',
        "carriage return": f"a carriage return inside an unquoted field on {on} "
        "(fields with line breaks must be quoted)",
    }
    return ChallengeFileError(
        path, f"malformed CSV: {reasons[kind]}", line=line, column=_column_name(names, field)
    )


def _wrong_field_count(
    path: Path, names: Sequence[str], line: int, found: int
) -> ChallengeFileError:
    if found > len(names):
        column = _column_name(names, len(names) - 1)
        hint = f"text after {column!r} (a comma outside quotes, or a quote closed too early?)"
    else:
        column = _column_name(names, found)
        hint = f"{column!r} is missing (a quoted field holding the separators?)"
    fields = "1 field" if found == 1 else f"{found} fields"
    return ChallengeFileError(
        path,
        f"malformed CSV: {fields} where the header has {len(names)}: {hint}",
        line=line,
        column=column,
    )


def _parse(path: Path, text: str, names: Sequence[str]) -> tuple[list[list[str]], list[int]]:
    """The data records and the line each starts on; bad quoting or field counts raise."""
    width = len(names)
    rows: list[list[str]] = []
    starts: list[int] = []
    end = 0  # the last line consumed
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        with _field_limit(MAX_FIELD_CHARS):
            next(reader)
            end = reader.line_num
            for record in reader:
                if len(record) != width:
                    if not record or (len(record) == 1 and not record[0].strip()):
                        end = reader.line_num  # a blank line, skipped as pandas did
                        continue
                    raise _wrong_field_count(path, names, end + 1, len(record))
                rows.append(record)
                starts.append(end + 1)
                end = reader.line_num
    except csv.Error as error:
        raise _malformed(path, text, names, end + 1, error) from None
    return rows, starts


def _nul_error(path: Path, raw: bytes, position: int, names: Sequence[str]) -> ChallengeFileError:
    # in UTF-8 a 0 byte is always U+0000, so the prefix decodes
    prefix = raw[:position].decode("utf-8").removeprefix("\ufeff")
    return ChallengeFileError(
        path,
        f"a NUL character (byte offset {position}): text cannot hold NUL "
        "(PostgreSQL rejects it); is the file binary or damaged?",
        line=raw.count(b"\n", 0, position) + 1,
        column=_column_at(prefix, names),
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _decode(path: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        header = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
        names = _last_loose_record(header)
        # from the start of the file: a record may span lines
        prefix = raw[: error.start].decode("utf-8").removeprefix("\ufeff")
        column = _column_at(prefix, names)
        bad = raw[error.start : error.end]
        raise ChallengeFileError(
            path,
            f"bytes {bad!r} are not valid UTF-8 (byte offset {error.start}); "
            "save the file as UTF-8",
            line=line,
            column=column,
        ) from None
    return text.removeprefix("\ufeff")


def _read_csv(path: Path, expected: Sequence[str]) -> _CsvFile:
    path = Path(path)
    if not path.is_file():
        raise ChallengeFileError(path, f"file not found in {path.parent}")
    raw = path.read_bytes()
    if not raw.strip():
        raise ChallengeFileError(path, "the file is empty", line=1)
    text = _decode(path, raw)
    try:
        with _field_limit(MAX_FIELD_CHARS):
            header = next(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as error:
        raise _malformed(path, text, ["", *expected], 1, error) from None
    missing = [column for column in expected if column not in header[1:]]
    if missing:
        raise ChallengeFileError(
            path,
            f"missing column(s) {', '.join(missing)}; the header must be "
            f"',{','.join(expected)}' (found {','.join(header)!r})",
            line=1,
            column=missing[0],
        )
    if header[0] not in ("", "Unnamed: 0"):
        raise ChallengeFileError(
            path,
            f"the first column must be the unnamed index column, found {header[0]!r}",
            line=1,
            column=header[0],
        )
    nul = raw.find(b"\0")  # bytes: far faster to search than the decoded text
    try:
        rows, starts = _parse(path, text, header)
    except ChallengeFileError as error:
        # report whichever comes first in the file
        if nul >= 0 and raw.count(b"\n", 0, nul) + 1 < (error.line or 0):
            raise _nul_error(path, raw, nul, header) from None
        raise
    if nul >= 0:
        raise _nul_error(path, raw, nul, header)
    if not rows:
        raise ChallengeFileError(path, "the file has a header but no rows", line=2)
    # a name the header repeats: its first column counts, as it did with pandas
    positions = [0, *(header.index(column, 1) for column in expected)]
    frame = pd.DataFrame(rows, columns=range(len(header)))[positions]
    frame.columns = pd.Index(["index", *expected])
    return _CsvFile(path, frame, hashlib.sha256(raw).hexdigest(), starts)


def _first_bad(mask: pd.Series) -> int | None:
    positions = mask.to_numpy().nonzero()[0]
    return int(positions[0]) if len(positions) else None


def _integers(file: _CsvFile, column: str) -> pd.Series:
    values = file.frame[column].str.strip()
    bad = _first_bad(~values.str.fullmatch(_INTEGER))
    if bad is not None:
        raise ChallengeFileError(
            file.path,
            f"{values.iloc[bad]!r} is not a non-negative integer (ASCII digits 0-9)",
            line=file.line_of(bad),
            column=column,
        )
    try:
        return values.astype("int64")
    except OverflowError:
        too_large = _first_bad(values.map(int) > _INT64_MAX)  # only on failure: slow
        assert too_large is not None
        raise ChallengeFileError(
            file.path,
            f"{values.iloc[too_large]} does not fit in a signed 64-bit integer "
            f"(at most {_INT64_MAX})",
            line=file.line_of(too_large),
            column=column,
        ) from None


def _unique(file: _CsvFile, values: pd.Series, column: str) -> None:
    duplicated = values.duplicated()
    bad = _first_bad(duplicated)
    if bad is not None:
        first = _first_bad(values == values.iloc[bad])
        assert first is not None
        raise ChallengeFileError(
            file.path,
            f"duplicate {column} {values.iloc[bad]} (first seen on line {file.line_of(first)})",
            line=file.line_of(bad),
            column=column,
        )


def _listings(file: _CsvFile) -> pd.DataFrame:
    index = _integers(file, "index")
    _unique(file, index, "index")
    productid = _integers(file, "productid")
    _unique(file, productid, "productid")
    imageid = _integers(file, "imageid")
    # rejected here rather than by the asset check, which runs after the rows are committed;
    # same test as quality.no_empty_designation
    empty = _first_bad(file.frame["designation"].str.strip() == "")
    if empty is not None:
        raise ChallengeFileError(
            file.path,
            "empty designation: every product needs its title (the description may be empty)",
            line=file.line_of(empty),
            column="designation",
        )
    description = file.frame["description"]
    frame = pd.DataFrame(
        {
            "productid": productid.to_numpy(),
            "imageid": imageid.to_numpy(),
            "designation": file.frame["designation"].to_numpy(),
            "description": description.where(description != "", None).to_numpy(),
        },
        index=pd.Index(index.to_numpy(), name="row"),
    )
    return frame


def read_training_set(data_dir: Path) -> TrainingSet:
    """Read and validate X_train and Y_train; raise `ChallengeFileError` on the first problem."""
    data_dir = Path(data_dir)
    x_file = _read_csv(data_dir / X_TRAIN_FILE, X_COLUMNS)
    y_file = _read_csv(data_dir / Y_TRAIN_FILE, Y_COLUMNS)
    listings = _listings(x_file)

    y_index = _integers(y_file, "index")
    if len(y_index) != len(listings):
        shorter, longer = (y_file, x_file) if len(y_index) < len(listings) else (x_file, y_file)
        raise ChallengeFileError(
            longer.path,
            f"{X_TRAIN_FILE} has {len(listings)} rows but {Y_TRAIN_FILE} has {len(y_index)}: "
            f"row {min(len(y_index), len(listings)) + 1} has no counterpart in {shorter.path.name}",
            line=longer.line_of(min(len(y_index), len(listings))),
            column="index",
        )
    mismatch = _first_bad(pd.Series(y_index.to_numpy() != listings.index.to_numpy()))
    if mismatch is not None:
        raise ChallengeFileError(
            y_file.path,
            f"index {y_index.iloc[mismatch]} does not match index "
            f"{listings.index[mismatch]} on line {x_file.line_of(mismatch)} of {X_TRAIN_FILE}; "
            "Y must list the same rows as X in the same order",
            line=y_file.line_of(mismatch),
            column="index",
        )
    labels = _integers(y_file, "prdtypecode")
    unknown = _first_bad(~labels.isin(CODES))
    if unknown is not None:
        raise ChallengeFileError(
            y_file.path,
            f"label {labels.iloc[unknown]} is not one of the 27 product-type codes "
            f"({', '.join(map(str, CODES))})",
            line=y_file.line_of(unknown),
            column="prdtypecode",
        )
    listings["prdtypecode"] = labels.to_numpy()
    return TrainingSet(
        frame=listings,
        source_hashes={X_TRAIN_FILE: x_file.sha256, Y_TRAIN_FILE: y_file.sha256},
    )


def read_test_set(data_dir: Path) -> pd.DataFrame | None:
    """The unlabelled listings of X_test_update.csv, or None when the file is absent."""
    path = Path(data_dir) / X_TEST_FILE
    if not path.exists():
        return None
    return _listings(_read_csv(path, X_COLUMNS))


def challenge_files_present(data_dir: Path) -> bool:
    return all((Path(data_dir) / name).is_file() for name in (X_TRAIN_FILE, Y_TRAIN_FILE))


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    frame.to_csv(temporary, index=True, lineterminator="\n", encoding="utf-8")
    temporary.replace(path)


def write_challenge_files(
    out_dir: Path, x_train: pd.DataFrame, y_train: pd.DataFrame, x_test: pd.DataFrame | None
) -> dict[str, Path]:
    """Write frames indexed by row number in the challenge's exact CSV layout."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    frames = {X_TRAIN_FILE: x_train[list(X_COLUMNS)], Y_TRAIN_FILE: y_train[list(Y_COLUMNS)]}
    if x_test is not None:
        frames[X_TEST_FILE] = x_test[list(X_COLUMNS)]
    for name, frame in frames.items():
        frame = frame.rename_axis(None)
        _write_atomically(frame, out_dir / name)
        written[name] = out_dir / name
    return written
