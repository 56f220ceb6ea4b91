"""Read, validate and write the challenge files in their exact format.

`X_train_update.csv`: an unnamed index column, then `designation,description,productid,imageid`.
`Y_train_CVw08PX.csv`: an unnamed index column, then `prdtypecode` (joined to X on the index).
`X_test_update.csv`: like X, unlabelled, optional.

Validation errors name the file, the line and the column. Text is kept as it came (HTML,
entities and mojibake included): cleaning belongs to the training features.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Sequence
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

_INTEGER = r"\d+"
_PARSER_LINE = re.compile(r"line (\d+)")


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
    text: str
    frame: pd.DataFrame  # every column as str, the unnamed index column as `index`
    sha256: str
    _lines: list[int] | None = None

    def line_of(self, position: int) -> int:
        """1-based line on which the record at data position `position` starts."""
        if self._lines is None:
            self._lines = _record_start_lines(self.text)
        return self._lines[position]


def _record_start_lines(text: str) -> list[int]:
    # Quoted fields may span lines, so the line of record i is not i + 2.
    reader = csv.reader(io.StringIO(text))
    starts: list[int] = []
    previous_end = 0
    for record_number, _ in enumerate(reader):
        if record_number > 0:
            starts.append(previous_end + 1)
        previous_end = reader.line_num
    return starts


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
        line_start = raw.rfind(b"\n", 0, error.start) + 1
        line = raw.count(b"\n", 0, error.start) + 1
        column = None
        header = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
        names = next(csv.reader([header]), [])
        prefix = raw[line_start : error.start].decode("utf-8", errors="replace")
        field = len(next(csv.reader([prefix + "x"]), [""])) - 1
        if 0 <= field < len(names):
            column = names[field] or "index"
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
    header = next(csv.reader(io.StringIO(text)))
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
    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False, engine="c"
        )
    except pd.errors.ParserError as error:
        match = _PARSER_LINE.search(str(error))
        raise ChallengeFileError(
            path,
            f"malformed CSV ({error})",
            line=int(match.group(1)) if match else None,
        ) from None
    frame = frame.rename(columns={frame.columns[0]: "index"})
    if frame.empty:
        raise ChallengeFileError(path, "the file has a header but no rows", line=2)
    return _CsvFile(path, text, frame, hashlib.sha256(raw).hexdigest())


def _first_bad(mask: pd.Series) -> int | None:
    positions = mask.to_numpy().nonzero()[0]
    return int(positions[0]) if len(positions) else None


def _integers(file: _CsvFile, column: str) -> pd.Series:
    values = file.frame[column].str.strip()
    bad = _first_bad(~values.str.fullmatch(_INTEGER))
    if bad is not None:
        raise ChallengeFileError(
            file.path,
            f"{values.iloc[bad]!r} is not a non-negative integer",
            line=file.line_of(bad),
            column=column if column != "index" else "index",
        )
    return values.astype("int64")


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
