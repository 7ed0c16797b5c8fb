"""Posts as they arrive from a crawler or a file, and the reading of JSON Lines and CSV files.

A crawler's file is never clean: an empty line, a page of binary junk, a line
cut in the middle of a UTF-8 character, a post of a megabyte.  One bad line
must not cost the analyst the other ten thousand, so each line is read on its
own; what cannot be screened is reported with its line number and the
reason, and the rest goes on.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

#: Longest text screened: a long post is a few thousand characters; more is a page dump.
MAX_TEXT = 20_000
#: Longest line read from a file (bytes): beyond it the line is reported, not parsed.
MAX_LINE = 200_000
MAX_ID = 200
FIELDS = ("id", "text", "title", "source", "url", "posted_at")


class PostError(ValueError):
    """Why a post cannot be screened (the message is shown to the user as is)."""


@dataclass(frozen=True)
class Post:
    id: str
    text: str
    title: str | None = None
    source: str | None = None
    url: str | None = None
    posted_at: datetime | None = None

    @property
    def full_text(self) -> str:
        """Title and body as one text: recruiters put the lure in either."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str
    id: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (post {self.id})" if self.id else "")
        return f"{where}: {self.reason}"


def _junk_share(text: str) -> float:
    """Share of characters that no writer types: controls, replacement characters, private use."""
    bad = 0
    for ch in text:
        if ch in "\t\n\r":
            continue
        cat = unicodedata.category(ch)
        if cat in {"Cc", "Co", "Cs"} or ch == "\ufffd":
            bad += 1
    return bad / max(1, len(text))


def _text(value: Any, name: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise PostError(f"{name} must be text")
    text = str(value).strip()
    if len(text) > limit:
        raise PostError(f"{name} is {len(text):,} characters long; the limit is {limit:,}")
    if "\x00" in text:
        raise PostError(f"{name} holds NUL characters (binary data)")
    return text or None


def parse_time(value: Any) -> datetime | None:
    """An ISO date or date-time (a trailing Z allowed); naive UTC is stored."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise PostError("posted_at must be an ISO date or date-time such as 2025-03-01T08:30:00Z")
    raw = value.strip()
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time())
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise PostError(f"posted_at {raw[:40]!r} is not an ISO date or date-time") from None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def parse_post(data: Any) -> Post:
    """A validated post from a decoded JSON object or CSV row; :class:`PostError` says what is wrong."""
    if not isinstance(data, dict):
        raise PostError("a post must be an object with at least 'id' and 'text'")
    # Other fields a crawler adds (likes, language, author…) are ignored: they are not screened.
    post_id = _text(data.get("id"), "id", MAX_ID)
    if post_id is None:
        raise PostError("id is missing")
    text = _text(data.get("text"), "text", MAX_TEXT)
    if text is None:
        raise PostError("text is empty")
    if _junk_share(text) > 0.05:
        raise PostError("text is binary junk or badly decoded (control or replacement characters)")
    if not any(ch.isalpha() for ch in text):
        raise PostError("text has no letters in any script")
    return Post(
        id=post_id,
        text=text,
        title=_text(data.get("title"), "title", 1000),
        source=_text(data.get("source"), "source", 200),
        url=_text(data.get("url"), "url", 2000),
        posted_at=parse_time(data.get("posted_at")),
    )


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PostError(f"not UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start + 1})") from None


def read_jsonl(lines: Iterator[bytes]) -> Iterator[tuple[int, Post | BadLine]]:
    """One post per line; blank lines are reported too (a crawler writes none)."""
    for number, raw in enumerate(lines, 1):
        if len(raw) > MAX_LINE:
            yield number, BadLine(number, f"line is {len(raw):,} bytes long; the limit is {MAX_LINE:,}")
            continue
        post_id = None
        try:
            line = _decode(raw).strip().lstrip("\ufeff")
            if not line:
                raise PostError("empty line")
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PostError(f"not JSON ({exc.msg} at column {exc.colno})") from None
            if isinstance(data, dict) and isinstance(data.get("id"), str | int):
                post_id = str(data["id"])[:MAX_ID]
            yield number, parse_post(data)
        except PostError as exc:
            yield number, BadLine(number, str(exc), post_id)


def read_csv(raw: bytes) -> Iterator[tuple[int, Post | BadLine]]:
    """Rows of a CSV file with a header naming the fields; line numbers count the header as line 1."""
    physical = raw.split(b"\n")
    bad_bytes: dict[int, str] = {}
    decoded: list[str] = []
    for number, chunk in enumerate(physical, 1):
        if len(chunk) > MAX_LINE:
            bad_bytes[number] = f"line is {len(chunk):,} bytes long; the limit is {MAX_LINE:,}"
            decoded.append(chunk[:MAX_LINE].decode("utf-8", errors="replace"))
            continue
        try:
            decoded.append(_decode(chunk))
        except PostError as exc:
            bad_bytes[number] = str(exc)
            decoded.append(chunk.decode("utf-8", errors="replace"))
    if decoded and decoded[-1] == "":
        decoded.pop()
    text = "\n".join(decoded).lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="_extra")
    if reader.fieldnames is None:
        return
    missing = {"id", "text"} - set(reader.fieldnames)
    if missing:
        yield 1, BadLine(1, f"the header lacks {', '.join(sorted(missing))}; columns: {', '.join(FIELDS)}")
        return
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, BadLine(start, f"unreadable CSV ({exc})")
            start = reader.line_num + 1
            continue
        end = reader.line_num
        problem = next((bad_bytes[n] for n in range(start, end + 1) if n in bad_bytes), None)
        post_id = (row.get("id") or "")[:MAX_ID] or None
        if problem is not None:
            yield start, BadLine(start, problem, post_id)
        elif "_extra" in row:
            yield start, BadLine(start, "more values than columns", post_id)
        elif not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            yield start, BadLine(start, "empty line")
        else:
            try:
                yield start, parse_post({k: v for k, v in row.items() if k in FIELDS})
            except PostError as exc:
                yield start, BadLine(start, str(exc), post_id)
        start = end + 1


def read_file(path: Path) -> Iterator[tuple[int, Post | BadLine]]:
    """Posts of a ``.jsonl``/``.ndjson``/``.json`` (one object a line) or ``.csv`` file, line by line."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from read_csv(path.read_bytes())
        return
    if suffix not in {".jsonl", ".ndjson", ".json"}:
        raise PostError(f"{path.name}: expected a .jsonl or .csv file")
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if suffix == ".json" and head.startswith(b"["):
        yield from read_json_array(path.read_bytes())
        return
    with path.open("rb") as fh:
        yield from read_jsonl(line.rstrip(b"\r\n") for line in fh)


def read_json_array(raw: bytes) -> Iterator[tuple[int, Post | BadLine]]:
    """A ``.json`` file holding one array of posts; the "line" of a post is its place in the array."""
    try:
        items = json.loads(_decode(raw).lstrip("\ufeff"))
    except (PostError, json.JSONDecodeError) as exc:
        yield 1, BadLine(1, f"not a JSON array of posts ({exc})")
        return
    for number, item in enumerate(items, 1):
        try:
            yield number, parse_post(item)
        except PostError as exc:
            post_id = str(item.get("id"))[:MAX_ID] if isinstance(item, dict) and "id" in item else None
            yield number, BadLine(number, str(exc), post_id)
