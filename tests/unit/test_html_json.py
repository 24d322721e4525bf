"""JSON embedded in the pages: inert for the HTML parser, the same data for JSON.parse."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from wa_monitor.web.pages import _safe_next, html_json, templates

TEMPLATES = Path(__file__).resolve().parents[2] / "wa_monitor" / "web" / "templates"
# What the HTML parser reads inside a <script> (or an attribute) rather than as data.
PARSER_SIGNIFICANT = ("<", ">", "&", "'", "\u2028", "\u2029")
HOSTILE = [
    "<!--<script>",
    "</script><script>alert(1)</script>",
    "<![CDATA[",
    "]]>",
    "-->",
    "&lt;&amp;",
    "\u2028\u2029",
    "'\"",
    "\ud800",  # a lone surrogate, as a broken client could send
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(alphabet=st.characters(codec=None))
    | st.sampled_from(HOSTILE),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text() | st.sampled_from(HOSTILE), children, max_size=5),
    max_leaves=20,
)


@given(json_values)
def test_embedded_json_holds_nothing_the_html_parser_reads_and_decodes_to_the_value(
    value: Any,
) -> None:
    embedded = str(html_json(value))
    assert not [c for c in PARSER_SIGNIFICANT if c in embedded]
    assert embedded.isascii()
    assert json.loads(embedded) == value


def test_the_reported_project_name_cannot_open_a_comment_in_the_boot_script() -> None:
    embedded = str(html_json({"projects": ["<!--<script>"]}))
    assert embedded == '{"projects": ["\\u003c!--\\u003cscript\\u003e"]}'


def test_templates_embed_json_only_through_the_escaping_filter() -> None:
    assert templates.env.filters["tojson"] is html_json
    for path in TEMPLATES.glob("*.html"):
        source = path.read_text()
        assert "|safe" not in source.replace(" ", ""), path.name  # nothing skips escaping
        for script in re.findall(r"<script[^>]*>(.*?)</script>", source, re.S):
            assert not script.strip() or re.fullmatch(r"\{\{ *\w+ *\| *tojson *\}\}", script)


@given(st.text())
def test_sign_in_redirects_only_to_paths_of_this_site(target: str) -> None:
    safe = _safe_next(target)
    assert safe == "/wa-monitor" or safe == target
    assert safe.startswith("/") and not safe.startswith("//")
    assert not any(c.isspace() or c == "\\" or not c.isprintable() for c in safe)


def test_sign_in_refuses_redirects_a_browser_would_read_as_another_site() -> None:
    for target in ("//evil.example", "/\\evil.example", "/\t/evil.example", "/\n/evil.example"):
        assert _safe_next(target) == "/wa-monitor", repr(target)
    assert _safe_next("/wa-monitor/projects") == "/wa-monitor/projects"
