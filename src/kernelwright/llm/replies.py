"""Replies to candidate source: a fenced code block, or SEARCH/REPLACE edits applied to the parent.

A coder or debugger answers in one of two forms:

    ```python                      <<<<<<< SEARCH
    ...the whole file...           lines of the parent, as they are
    class ModelNew(nn.Module):     =======
    ...                            the lines that replace them
    ```                            >>>>>>> REPLACE

A reply holding edit markers is read as edits; otherwise the last fenced block
that defines `ModelNew` is the candidate. An edit whose SEARCH text is not in
the parent word for word is tried again ignoring trailing spaces, blank lines
and an indentation shift applied to every line alike (models often re-indent
or drop a blank line when they quote); one that still matches nowhere raises
EditMismatch, which asks for the whole file instead. Anything else that
cannot be read raises ReplyError, whose message is written to be sent back to
the model once.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from kernelwright import pysource

SEARCH, DIVIDER, REPLACE = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"
_MARKER = re.compile(r"^\s*(<{5,9} ?SEARCH|={5,9}|>{5,9} ?REPLACE)\s*$")
_SEARCH_MARKER = re.compile(r"^\s*<{5,9} ?SEARCH\s*$", re.MULTILINE)
_FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_MODEL_NEW = re.compile(r"^class\s+ModelNew\b", re.MULTILINE)
_PYTHON_TAGS = ("", "python", "py", "python3")
_FULL_FILE = "reply with the complete candidate file (imports, kernels and class ModelNew) in one ```python block"


class ReplyError(Exception):
    """A reply that is not a candidate; the message says why, in words meant for the model."""


class EditMismatch(ReplyError):
    """An edit whose SEARCH text matches nowhere in the parent, even ignoring whitespace."""


@dataclass(frozen=True)
class Edit:
    search: str
    replace: str


@dataclass(frozen=True)
class ParsedReply:
    source: str
    form: str  # "code" (a whole file) or "edits" (SEARCH/REPLACE applied to the parent)
    notes: tuple[str, ...] = field(default_factory=tuple)  # how edits were matched, when not word for word


def parse_reply(text: str, parent_source: str | None = None) -> ParsedReply:
    """The candidate source in `text`: edits applied to `parent_source`, or the whole file given."""
    if _SEARCH_MARKER.search(text):
        if parent_source is None:
            raise ReplyError(f"The reply has SEARCH/REPLACE edits, but there is no parent file to edit: {_FULL_FILE}.")
        source, notes = apply_edits(parent_source, parse_edits(text))
        if not _MODEL_NEW.search(source):
            raise ReplyError(f"After the edits the file no longer defines class ModelNew: {_FULL_FILE}.")
        return ParsedReply(source, "edits", tuple(notes))
    return ParsedReply(code_block(text), "code")


def code_block(text: str) -> str:
    """The file in the reply: the last fenced Python block that defines ModelNew and parses, else the
    longest that defines it (its syntax error then becomes the evaluator's verdict, with a line number)."""
    blocks = [body for tag, body in _FENCE.findall(text) if tag.lower() in _PYTHON_TAGS]
    full = [b for b in blocks if _MODEL_NEW.search(b)]
    if not full:
        if len(re.findall(r"^```", text, re.MULTILINE)) % 2:  # an odd number of fence lines
            raise ReplyError(f"The reply opens a ``` code block but never closes it: {_FULL_FILE}.")
        what = "no fenced ```python code block" if not blocks else "no code block that defines class ModelNew"
        raise ReplyError(f"The reply has {what}: {_FULL_FILE}.")
    parsing = [b for b in full if _parses(b)]
    return parsing[-1] if parsing else max(full, key=len)


def parse_edits(text: str) -> list[Edit]:
    """The SEARCH/REPLACE blocks of a reply, in order; ReplyError names the first broken one."""
    edits: list[Edit] = []
    state, search, replace = "outside", [], []
    for number, line in enumerate(text.splitlines(), 1):
        marker = _MARKER.match(line)
        kind = marker.group(1).strip()[0] if marker else None  # "<", "=" or ">"
        if state == "outside":
            if kind == "<":
                state, search, replace = "search", [], []
            elif kind is not None:
                raise ReplyError(f"Line {number} of the reply: {line.strip()!r} outside an edit block; "
                                 f"each edit is {SEARCH} / {DIVIDER} / {REPLACE}.")
        elif state == "search":
            if kind == "=":
                state = "replace"
            elif kind is not None:
                raise ReplyError(f"Edit {len(edits) + 1}: expected {DIVIDER!r} after the SEARCH lines, "
                                 f"found {line.strip()!r} (line {number} of the reply).")
            else:
                search.append(line)
        else:
            if kind == ">":
                if not any(s.strip() for s in search):
                    raise ReplyError(f"Edit {len(edits) + 1} has an empty SEARCH part: quote the lines to "
                                     f"replace, or {_FULL_FILE}.")
                edits.append(Edit("\n".join(search), "\n".join(replace)))
                state = "outside"
            elif kind is not None:
                raise ReplyError(f"Edit {len(edits) + 1}: expected {REPLACE!r} to close it, "
                                 f"found {line.strip()!r} (line {number} of the reply).")
            else:
                replace.append(line)
    if state != "outside":
        raise ReplyError(f"Edit {len(edits) + 1} is not closed: it needs both {DIVIDER!r} and {REPLACE!r} lines.")
    return edits


def apply_edits(source: str, edits: list[Edit]) -> tuple[str, list[str]]:
    """`source` with each edit applied in turn (a later edit sees the earlier ones' result), and notes on
    edits that matched only loosely or in more than one place."""
    notes: list[str] = []
    for number, edit in enumerate(edits, 1):
        found = source.count(edit.search)
        if found:  # word for word (a part of a line is fine: it is what the model quoted)
            source = source.replace(edit.search, edit.replace, 1)
            if found > 1:
                notes.append(f"edit {number}: SEARCH text found {found} times; the first was replaced")
            continue
        lines = source.splitlines()
        search = edit.search.splitlines()
        loose = _loose_matches(lines, search)
        if not loose:
            raise EditMismatch(_mismatch_message(number, lines, search))
        start, end, shift = loose[0]
        notes.append(f"edit {number}: matched ignoring whitespace" + (f" (indentation {shift:+d})" if shift else "")
                     + (f"; {len(loose)} places matched, the first was replaced" if len(loose) > 1 else ""))
        lines[start:end] = [_shift(line, shift) for line in edit.replace.splitlines()]
        source = "\n".join(lines) + "\n"
    return source, notes


def _loose_matches(lines: list[str], search: list[str]) -> list[tuple[int, int, int]]:
    """(start, end, indentation shift) of each place the non-blank SEARCH lines match the non-blank
    parent lines, comparing lines without their indentation and trailing spaces, with one indentation
    difference (parent minus SEARCH) for all lines."""
    wanted = [(_indent(s), s.strip()) for s in search if s.strip()]
    have = [(i, _indent(line), line.strip()) for i, line in enumerate(lines) if line.strip()]
    found = []
    for k in range(len(have) - len(wanted) + 1):
        window = have[k:k + len(wanted)]
        if any(text != want_text for (_, _, text), (_, want_text) in zip(window, wanted)):
            continue
        shifts = {indent - want_indent for (_, indent, _), (want_indent, _) in zip(window, wanted)}
        if len(shifts) == 1:
            found.append((window[0][0], window[-1][0] + 1, shifts.pop()))
    return found


def _indent(line: str) -> int:
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip(" "))


def _shift(line: str, shift: int) -> str:
    """A REPLACE line moved by the indentation difference its SEARCH part had from the parent."""
    if not line.strip():
        return ""
    if shift >= 0:
        return " " * shift + line
    expanded = line.expandtabs(4)
    return expanded[min(-shift, _indent(expanded)):]


def _mismatch_message(number: int, lines: list[str], search: list[str]) -> str:
    first = next((s.strip() for s in search if s.strip()), "")
    near = difflib.get_close_matches(first, [line.strip() for line in lines], n=1, cutoff=0.6)
    hint = f" The closest parent line to its first line is {near[0]!r}." if near else ""
    return (f"Edit {number}: the SEARCH text is not in the parent file, even ignoring whitespace "
            f"(it begins {first!r}).{hint} A full rewrite is needed: {_FULL_FILE}.")


def _parses(source: str) -> bool:
    try:
        pysource.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True
