"""Plain text from (already sanitised) HTML, as a reader sees it.

Inline tags vanish without a gap (`#<span>Tag</span>` reads `#Tag`); block
elements and line breaks separate words. Used for matching, fingerprints and
excerpts. Pure functions, no I/O.
"""

from __future__ import annotations

import functools
import html
import re

_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "caption",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
# a tag, with quoted attribute values that may themselves contain '>'
_TAG = re.compile(r"""<(/?)([a-zA-Z][a-zA-Z0-9]*)(?:[^>"']|"[^"]*"|'[^']*')*>|<!--.*?-->""", re.S)
# C0 controls other than tab/newline/CR, and the XML-forbidden non-characters
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def strip_controls(value: str) -> str:
    """Remove characters that XML cannot carry and that terminals may act on."""
    if value.isprintable():  # no controls (a C loop, twice as fast as the regex's scan)
        return value
    return _CONTROL.sub("", value)


#: every whitespace character but the space (what str.isspace and regex \s accept;
#: tests/test_units.py checks this against every code point)
OTHER_SPACES = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
# a control or a whitespace character other than the space, in one character class
_NOT_ONE_LINE = re.compile(f"[\x00-\x08\x0e-\x1f\x7f\ufffe\uffff{OTHER_SPACES}]")


def one_line(value: str) -> str:
    """Collapse all whitespace (including CR/LF) to single spaces: safe for titles and headers."""
    if "  " not in value and (value.isprintable() or _NOT_ONE_LINE.search(value) is None):
        return value.strip()  # the usual case: two scans, no list of words
    return " ".join(strip_controls(value).split())  # split() and \s agree on what is space


def html_to_text(fragment: str) -> str:
    """The rendered text of an HTML fragment, whitespace collapsed."""
    if "<" not in fragment and "&" not in fragment:
        return one_line(fragment)

    def replace(match: re.Match[str]) -> str:
        name = (match.group(2) or "").lower()
        return " " if name in _BLOCK_TAGS else ""

    return one_line(html.unescape(_TAG.sub(replace, fragment)))


#: the links that stand in for embedded players (`pipeline.sanitize`): not prose
_PLAYER_LINK = re.compile(r"(?:Watch the video|Open): https?://\S+")


def excerpt(text: str, words: int = 50) -> str:
    """The first `words` words of a text, with an ellipsis when cut (the links that
    stand in for embedded players left out)."""
    if "://" in text:
        text = _PLAYER_LINK.sub("", text)
    parts = text.split()
    if len(parts) <= words:
        return " ".join(parts)
    return " ".join(parts[:words]) + " …"


_NON_WORD = re.compile(r"[\W_]+")
_OTHER_SPACE = re.compile(f"[{OTHER_SPACES}]")


@functools.lru_cache(maxsize=8192)  # feeds repeat their categories entry after entry
def normalise_tag(tag: str) -> str:
    """`Co-production Week` = `coproduction week` = `#CoProductionWeek` -> `coproductionweek`."""
    return _NON_WORD.sub("", tag.casefold())


def normalise_phrase(text: str) -> str:
    """Case-folded, hyphens removed, runs of whitespace collapsed."""
    folded = text.casefold().replace("-", "").replace("\u2010", "")
    if "  " not in folded and _OTHER_SPACE.search(folded) is None:
        return folded.strip()
    return " ".join(folded.split())


def readable_tag(tag: str) -> str:
    """A tag as people read it: a slug's dashes become spaces (`co-production-week` ->
    `co production week`), a tag written with spaces keeps its hyphens (`Co-production
    Week`), and a hashtag loses its `#`."""
    bare = tag.strip().lstrip("#")
    if not any(c.isspace() for c in bare):
        bare = bare.replace("-", " ").replace("_", " ")
    return " ".join(bare.split()) or tag
