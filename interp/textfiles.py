"""Reading the user's text files: every failure is one `UserError` line, never a traceback.

    text = read_text(path, "questions file")          # str; UserError if missing, a folder or not UTF-8
    df = read_csv_file(path, "CrowS-Pairs file")      # DataFrame through the same checks
    obj = read_json_file(path, "summary.json")        # parsed JSON through the same checks
    rows = read_jsonl_records(path, "Dolly file", ("instruction", "response"))   # one dict per line
    for line_no, obj in parse_jsonl(text, path): ...  # the file's own line numbers, for error messages
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from interp.errors import UserError


def _decoded(p: Path) -> tuple[str | None, str | None]:
    """(the UTF-8 text of `p` with a leading BOM dropped, None) or (None, why it cannot be read)."""
    if not p.exists():
        return None, "does not exist"
    if not p.is_file():
        return None, "is a folder, not a file" if p.is_dir() else "is not a regular file"
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        return None, f"is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); is it the right file?"


def input_file_problem(path: str | Path) -> str | None:
    """Why `path` is no input file ("does not exist", "is a folder, not a file", "is not UTF-8 text ...",
    "is a binary file ...", "is empty"), or None for a UTF-8 text file with some non-whitespace content."""
    text, problem = _decoded(Path(path))
    if text is None:
        return problem
    if "\0" in text:
        return f"is a binary file (a NUL byte at character {text.index(chr(0))}), not text"
    if not text.strip():
        return "is empty" + (" (only whitespace)" if text else "")
    return None


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of `path` (a leading BOM dropped); UserError if missing, a folder or not UTF-8."""
    p = Path(path)
    text, problem = _decoded(p)
    if text is None:
        raise UserError(f"{what} {p} {problem}")
    return text


def read_csv_file(path: str | Path, what: str = "CSV file", **kwargs: Any) -> Any:
    """`pandas.read_csv` of a UTF-8 text file; a parse failure is a UserError."""
    import pandas as pd

    text = read_text(path, what)
    try:
        return pd.read_csv(io.StringIO(text), **kwargs)
    except Exception as e:  # noqa: BLE001 - any parse failure is the user's file
        raise UserError(f"cannot read {what} {path} as CSV: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def read_json_file(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed JSON of a UTF-8 text file; a parse failure is a UserError."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{what} {path} is not valid JSON: {e}") from None


def parse_jsonl(text: str, path: str | Path) -> list[tuple[int, Any]]:
    """(line number in the file, parsed value) of every non-blank line of JSONL `text`; a line that is
    not JSON is a UserError naming the file's line: '{path}:{line} is not valid JSON ({msg}, column c)'.

    Parse line by line and report `n` from here: json.loads of one line reports 'line 1' for every
    line. Lines end at '\n' only ('\r\n' too: a trailing '\r' is JSON whitespace); str.splitlines
    also splits at U+2028, form feeds and the like, which a JSON string may hold raw, so it would
    break such a row in two and shift every later line number."""
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{n} is not valid JSON ({e.msg}, column {e.colno})") from None
    return out


def read_jsonl_records(path: str | Path, what: str = "JSONL file", required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One JSON object per non-empty line, each with string fields `required`; a bad line is a UserError
    naming its line in the file (`parse_jsonl`)."""
    rows = []
    for n, r in parse_jsonl(read_text(path, what), path):
        if not isinstance(r, dict) or any(not isinstance(r.get(k), str) for k in required):
            raise UserError(f"{path}:{n} needs string field(s) {', '.join(repr(k) for k in required)}")
        rows.append(r)
    if not rows:
        raise UserError(f"{what} {path} holds no rows")
    return rows


__all__ = ["read_text", "read_csv_file", "read_json_file", "parse_jsonl", "read_jsonl_records"]
