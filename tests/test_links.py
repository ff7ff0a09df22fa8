"""Links and file paths in the documentation resolve to files in this repository.

* Markdown (``README.md``, ``BENCHMARKS.md``, ``docs/**/*.md``): every relative link
  ``[text](target)``, image ``![alt](target)`` and reference definition ``[id]: target``
  must name an existing file or folder, relative to the document, inside the repository.
  External links (``http:``, ``https:``, ``mailto:``, any ``scheme:``) and pure ``#anchors``
  are skipped; a ``#fragment`` is stripped. Code blocks and code spans are not links.
* Docstrings of ``src/framekd/**/*.py``: every path into the repository must exist
  relative to the repository root. A path counts when it starts with one of the
  repository's source folders (``benchmarks/``, ``docs/``, ``src/``, ``tests/`` ...;
  ``framekd/...`` is read under ``src/``) or is a top-level document such as
  ``BENCHMARKS.md``. Output names (``metrics.json``, ``OUT/config.yaml``) and templates
  (``<cache>/stats.json``) are not repository paths and are skipped.
* Docstrings cite the specification as ``docs/SPEC.md §N``, never as a bare ``SPEC §N``.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "framekd"

MARKDOWN = sorted(
    {ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").rglob("*.md")}
)
SOURCES = sorted(PACKAGE.rglob("*.py"))

# Folders whose paths are repository paths when a docstring names them.
REPO_FOLDERS = {"benchmarks", "docs", "src", "tests", "examples", "scripts"}
EXTENSIONS = "py|md|csv|json|ya?ml|toml|txt|png|svg|ipynb|cfg|ini|sh|npz|npy|safetensors"
# A path: folders separated by "/", then name.ext. Not the tail of a longer token
# (``<cache>/stats.json``, ``$ROOT/x.md``), and not followed by a path character.
DOC_PATH = re.compile(
    rf"(?<![\w./<>$~*{{}}%-])((?:[\w.-]+/)*[\w.-]+\.(?:{EXTENSIONS}))(?![\w/<>*{{}}-])"
)
TOP_LEVEL_DOC = re.compile(r"[A-Z][A-Z0-9_-]*\.md")

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]\\]|\\.|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _blank(match: re.Match) -> str:
    """Replace code by spaces, keeping newlines so line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group(0))


def markdown_targets(text: str) -> list[tuple[int, str]]:
    """``(line, target)`` of every link, image and reference definition outside code."""
    text = CODE_SPAN.sub(_blank, FENCE.sub(_blank, text))
    found = []
    for pattern in (INLINE_LINK, REFERENCE):
        for m in pattern.finditer(text):
            found.append((text.count("\n", 0, m.start()) + 1, m.group(1).strip("<>")))
    return sorted(found)


def broken_markdown_links(doc: Path) -> list[str]:
    """The links of ``doc`` that do not resolve to a file or folder inside the repository."""
    broken = []
    for line, target in markdown_targets(doc.read_text(encoding="utf-8")):
        if SCHEME.match(target) or target.startswith("#"):
            continue
        path = unquote(target.split("#", 1)[0].split("?", 1)[0])
        resolved = (ROOT / path.lstrip("/")) if path.startswith("/") else doc.parent / path
        resolved = resolved.resolve()
        if not resolved.is_relative_to(ROOT):
            broken.append(f"{doc.relative_to(ROOT)}:{line}: {target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{doc.relative_to(ROOT)}:{line}: {target} (no such file)")
    return broken


def docstrings(source: Path) -> list[tuple[int, str]]:
    """``(first line, text)`` of the module, class and function docstrings of ``source``."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            text = ast.get_docstring(node, clean=False)
            if text is not None:
                out.append((node.body[0].lineno, text))
    return out


def repository_path(token: str) -> Path | None:
    """Where ``token`` points in the repository, or ``None`` if it is not a repository path."""
    parts = token.split("/")
    if len(parts) == 1:
        return ROOT / token if TOP_LEVEL_DOC.fullmatch(token) else None
    if parts[0] in REPO_FOLDERS:
        return ROOT / token
    if parts[0] == "framekd":
        return ROOT / "src" / token
    return None


def broken_docstring_paths(source: Path) -> list[str]:
    """The repository paths named in ``source``'s docstrings that do not exist."""
    broken = []
    for first_line, text in docstrings(source):
        for m in DOC_PATH.finditer(text):
            path = repository_path(m.group(1))
            if path is not None and not path.exists():
                line = first_line + text.count("\n", 0, m.start())
                broken.append(f"{source.relative_to(ROOT)}:{line}: {m.group(1)}")
    return broken


SPEC_CITATION = re.compile(r"(?:[\w./-]*/)?SPEC(?:\.md)?\s*§")


def bare_spec_citations(source: Path) -> list[str]:
    """Docstring citations of the specification that do not name ``docs/SPEC.md``."""
    bad = []
    for first_line, text in docstrings(source):
        for m in SPEC_CITATION.finditer(text):
            if not m.group(0).startswith("docs/SPEC.md"):
                line = first_line + text.count("\n", 0, m.start())
                bad.append(f"{source.relative_to(ROOT)}:{line}: {m.group(0)}")
    return bad


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("doc", MARKDOWN, ids=_ids(MARKDOWN))
def test_markdown_links_resolve(doc):
    assert broken_markdown_links(doc) == []


@pytest.mark.parametrize("source", SOURCES, ids=_ids(SOURCES))
def test_docstring_paths_exist(source):
    assert broken_docstring_paths(source) == []


@pytest.mark.parametrize("source", SOURCES, ids=_ids(SOURCES))
def test_docstrings_cite_the_spec_by_its_path(source):
    """The specification is ``docs/SPEC.md``; ``SPEC §4`` alone names no file."""
    assert bare_spec_citations(source) == []


# ----------------------------------------------------------------------------- the checker


def test_markdown_checker_finds_links_and_skips_code_and_urls():
    text = (
        "See [spec](docs/SPEC.md#2-graph-framelets) and ![plot](figures/a.png \"title\").\n"
        "[ref]: ../BENCHMARKS.md\n"
        "`[not](a-link.md)` and [web](https://example.org/x.md), [top](#top).\n"
        "```\n[inside](code.md)\n```\n"
    )
    assert markdown_targets(text) == [
        (1, "docs/SPEC.md#2-graph-framelets"), (1, "figures/a.png"), (2, "../BENCHMARKS.md"),
        (3, "#top"), (3, "https://example.org/x.md"),
    ]


def test_markdown_checker_rejects_missing_and_outside_targets(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("x")
    doc = tmp_path / "docs" / "a.md"
    doc.write_text("[ok](../README.md) [gone](b.md#x) [out](../../elsewhere.md)\n")
    assert broken_markdown_links(doc) == [
        "docs/a.md:1: ../../elsewhere.md (outside the repository)",
        "docs/a.md:1: b.md#x (no such file)",
    ]


@pytest.mark.parametrize(
    ("token", "checked"),
    [
        ("benchmarks/bench_x.py", True),
        ("docs/SPEC.md", True),
        ("BENCHMARKS.md", True),
        ("framekd/configs/cora.yaml", True),
        ("metrics.json", False),
        ("summary.md", False),
        ("run_dir/config.yaml", False),
    ],
)
def test_docstring_checker_tells_repository_paths_from_output_names(token, checked):
    assert (repository_path(token) is not None) == checked


def test_spec_citation_checker(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    source = tmp_path / "m.py"
    source.write_text('"""Per docs/SPEC.md §2, SPEC §3 and\nSPEC.md §4; --csbm-sweep SPEC."""\n')
    assert bare_spec_citations(source) == ["m.py:1: SPEC §", "m.py:2: SPEC.md §"]


def test_docstring_checker_skips_templates():
    text = "writes ``<cache>/stats.json`` and ``seed_<i>/x.safetensors``; see ``docs/a.md``."
    assert [m.group(1) for m in DOC_PATH.finditer(text)] == ["docs/a.md"]
