"""Named SQL statements, kept in the `.sql` files beside this module and read once.

A file holds blocks headed `-- name --`; the `-- ` lines right under a heading say what
the statement does and are not sent. Values travel as bind parameters (`:name`), never
formatted into the text: what a file shows is what the database runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType

_HEADING = re.compile(r"^-- ([a-z0-9_]+) --\n", re.MULTILINE)
_COMMENT_LINE = re.compile(r"^[ \t]*--.*(?:\n|$)", re.MULTILINE)


class QueryFileError(Exception):
    """A `.sql` file of the package is not a list of named statements."""


def parse(text: str, source: str = "<text>") -> dict[str, str]:
    """The statements of a query file's text by name, comment lines left out."""
    head, *blocks = _HEADING.split(text)
    if _COMMENT_LINE.sub("", head).strip():
        raise QueryFileError(f"{source}: SQL before the first `-- name --` heading")
    queries: dict[str, str] = {}
    for name, body in zip(blocks[::2], blocks[1::2], strict=True):
        statement = _COMMENT_LINE.sub("", body).strip()
        if name in queries:
            raise QueryFileError(f"{source}: the statement {name!r} is named twice")
        if not statement:
            raise QueryFileError(f"{source}: the statement {name!r} is empty")
        queries[name] = statement
    return queries


@cache
def queries(filename: str) -> Mapping[str, str]:
    """The named statements of one of this package's `.sql` files (read-only)."""
    text = resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")
    return MappingProxyType(parse(text, filename))
