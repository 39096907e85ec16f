"""Every reference in the repository resolves inside the repository.

A user has the package and this repository, nothing else. So no file may point at the team's
working documents (a specification or style guide kept next to the checkout, or the copy of the
tutorial this project started from), and the tutorial is called "the tutorial": the word seed
means a random seed everywhere (``--seed``, ``seed=``). Checked in every file git knows
(``git ls-files``, plus new files not ignored), text files only:

- no relative path leaves the repository (resolved from the file's own folder);
- no phrase that names the working documents or the tutorial by its old name (``FORBIDDEN``);
- every citation "docs/<name>.md, section '<heading>'" names an existing file and heading, and every
  bare "section 'HEADING'" inside docs/ a heading of the same document;
- every relative link in a markdown file points at a file of the repository.

Lines of this file that must quote what the checks look for (the examples the detectors are
tested on) end in ``# quoted pattern`` and are the only lines any check skips.
"""

import posixpath
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()
QUOTED = "# quoted pattern"

#: (regular expression, what it finds). Written so that none matches its own source line.
FORBIDDEN = [
    (re.compile(r"\bSPEC\b"), "the team's specification (cite docs/conventions.md or docs/axioms.md)"),
    (re.compile(r"(?i)\bspec\.md\b|\bspec sections? \d"), "the team's specification"),
    (re.compile(r"\bSTYLE\.md\b"), "the team's style guide"),
    (re.compile(r"(?i)(?<![a-z])the[ _]seed(?:'?s)?(?![a-z])"),
     "the tutorial under its old name (say 'the tutorial'; for a random seed, 'the random seed')"),
    (re.compile(r"(?i)\bseed's\b"), "the tutorial under its old name"),
    (re.compile(r"(?i)[(\"'\[]seed:(?!\s*(?:int|str|float|bool|None)\b)|#\s*seed:"),
     "a note or case name that calls the tutorial by its old name (write 'tutorial:')"),
    (re.compile(r"(?i)(?<![a-z])seed[ _-](?:document|doc\b|table|column|blank|errat|example|case|value|saturat"
                r"|formula|notation|symbol|paper|text)"),
     "a phrase or identifier that calls the tutorial by its old name (use 'tutorial')"),
    (re.compile(r"(?i)\bseeds/\d"), "the copy of the tutorial outside the repository"),
    (re.compile(r"(?i)^\s*\|\s*seed\s*\|"), "a table column named after the tutorial's old name"),
]

#: A path token that goes up a folder: "../x", "a/../../x".
UP_PATH = re.compile(r"(?<![\w.~$/-])((?:[\w.-]+/)*\.\./[\w./-]*)")
#: "docs/<name>.md", optionally followed by ", section 'HEADING'" (across line breaks, comment marks,
#: string quotes and JSON's escaped newlines). Headings contain no apostrophe.
DOCS_CITATION = re.compile(r"(?<![\w./-])docs/([\w-]+\.md)(?:,(?:\\n|[\s#\"])*section(?:\\n|[\s#\"])*'([^'\\\n]+)')?")
BARE_SECTION = re.compile(r"section '([^'\n]+)'")
MARKDOWN_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


def repository_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:  # pragma: no cover - a copy without git
        pytest.skip(f"git ls-files is not available here ({exc})")
    return sorted({p for p in out.decode("utf-8").split("\0") if p})


def read_text(path: str) -> str | None:
    """The file's text, or None for a binary file (a NUL byte, or not UTF-8) or a deleted one."""
    try:
        data = (ROOT / path).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


@pytest.fixture(scope="module")
def texts():
    files = {p: read_text(p) for p in repository_files()}
    return {p: visible(p, t) for p, t in files.items() if t is not None}


def visible(path: str, text: str) -> str:
    """``text`` with the quoted-pattern lines of this file blanked (line numbers unchanged)."""
    if path != SELF:
        return text
    return "\n".join("" if line.rstrip().endswith(QUOTED) else line for line in text.split("\n"))


def forbidden_phrases(path: str, text: str) -> list[str]:
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in FORBIDDEN:
            found = pattern.search(line)
            if found:
                problems.append(f"{path}:{number}: {found.group(0)!r}: {what}")
    return problems


def paths_leaving_the_repository(path: str, text: str) -> list[str]:
    folder = posixpath.dirname(path)
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for found in UP_PATH.finditer(line):
            target = posixpath.normpath(posixpath.join(folder, found.group(1)))
            if target == ".." or target.startswith("../"):
                problems.append(f"{path}:{number}: {found.group(1)!r} resolves to {target!r}, outside the repository")
    return problems


def headings(text: str) -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^#{1,6} +(.+?) *#*$", text, flags=re.MULTILINE)}


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def unresolved_citations(path: str, text: str, docs: dict[str, set[str]]) -> list[str]:
    problems = []
    cited = []
    for found in DOCS_CITATION.finditer(text):
        cited.append(found.span())
        name, section = found.group(1), found.group(2)
        where = f"{path}:{line_of(text, found.start())}"
        if name not in docs:
            problems.append(f"{where}: docs/{name} does not exist (docs/ holds {sorted(docs)})")
        elif section is not None and section not in docs[name]:
            problems.append(f"{where}: docs/{name} has no section {section!r} (it has {sorted(docs[name])})")
    if path.startswith("docs/") and path.endswith(".md"):
        own = docs.get(posixpath.basename(path), set())
        for found in BARE_SECTION.finditer(text):
            if any(start <= found.start() < end for start, end in cited):
                continue  # the section of a docs/<name>.md citation, checked above
            if found.group(1) not in own:
                problems.append(f"{path}:{line_of(text, found.start())}: no section {found.group(1)!r} in this "
                                f"document; cite another one as docs/<name>.md, section '...'")
    return problems


def broken_links(path: str, text: str, files: set[str]) -> list[str]:
    problems = []
    folders = {posixpath.dirname(f) for f in files}
    for found in MARKDOWN_LINK.finditer(text):
        target = found.group(1).split("#", 1)[0]
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target) or "{{" in target:
            continue  # an anchor in the same page, a URL (http:, mailto:), a template
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if resolved not in files and resolved not in folders:
            problems.append(f"{path}:{line_of(text, found.start())}: link {found.group(1)!r} points at "
                            f"{resolved!r}, which is not a file of the repository")
    return problems


# The scan of the whole repository -------------------------------------------------------------

def test_no_file_names_documents_a_user_does_not_have(texts):
    problems = [p for path, text in texts.items() for p in forbidden_phrases(path, text)]
    assert not problems, "\n".join([f"{len(problems)} reference(s) to documents outside the repository:"]
                                   + problems)


def test_no_relative_path_leaves_the_repository(texts):
    problems = [p for path, text in texts.items() for p in paths_leaving_the_repository(path, text)]
    assert not problems, "\n".join(problems)


def test_every_citation_of_docs_names_an_existing_section(texts):
    docs = {posixpath.basename(p): headings(t) for p, t in texts.items()
            if posixpath.dirname(p) == "docs" and p.endswith(".md")}
    assert {"README.md", "conventions.md", "axioms.md"} <= set(docs)
    # a heading with an apostrophe could not be cited as section '...'
    assert [h for hs in docs.values() for h in hs if "'" in h] == []
    problems = [p for path, text in texts.items() for p in unresolved_citations(path, text, docs)]
    assert not problems, "\n".join(problems)


def test_every_relative_markdown_link_points_at_a_repository_file(texts):
    files = set(texts) | set(repository_files())
    problems = [p for path, text in texts.items() if path.endswith(".md") for p in broken_links(path, text, files)]
    assert not problems, "\n".join(problems)


# The detectors themselves: what they must find, and what they must leave alone -----------------

@pytest.mark.parametrize("line", [
    "see SPEC section 4",  # quoted pattern
    "an erratum (SPEC",  # quoted pattern
    "(section 6 of SPEC.md)",  # quoted pattern
    "# (SPEC/STYLE: coverage sees them)",  # quoted pattern
    "the Spec section 5 says",  # quoted pattern
    "see STYLE.md",  # quoted pattern
    "regenerates the seed's summary table",  # quoted pattern
    "The seed writes the mask as 1(R > 1)",  # quoted pattern
    "def test_gradient_fails_on_the_seeds_saturating_unit():",  # quoted pattern
    "| Sensitivity | No (seed: Yes) [1] |",  # quoted pattern
    'yield Case("seed: saturating unit", net)',  # quoted pattern
    "# Seed: if x and x' differ only in feature k",  # quoted pattern
    'provenance="seed document, section Gradients"',  # quoted pattern
    "SEED_TABLE = {",  # quoted pattern
    'data["seed_table"]',  # quoted pattern
    "seed_column: str | None = None",  # quoted pattern
    "def test_seed_saturation_example():",  # quoted pattern
    "continuity.seed_case()",  # quoted pattern
    "the seed columns where they exist",  # quoted pattern
    "shared/seeds/000_7d5c35c1670a97af.txt",  # quoted pattern
    "| seed | refattr | meaning |",  # quoted pattern
])
def test_the_forbidden_phrases_are_found(line):
    assert forbidden_phrases("refattr/example.py", line)


@pytest.mark.parametrize("line", [
    'parser.add_argument("--seed", type=int)',
    "def check(spec, *, seed: int = 0):",
    "def benchmark_cnn(seed: int = 0, activation=ReLU):",
    "rng = np.random.default_rng(seed)",
    "torch.manual_seed(0)",
    '"seed": 20240611,',
    "Seed of every random case (numpy.random.default_rng(SEED + case index)).",
    "PROBE_SEED = 0",
    "random weights (fixed seed), a batch of 32",
    "3 standard normal examples (seed 0) and the zero input",
    "a seed of the random searches; the random seed and optimiser",
    "@given(seed=st.integers(0, 2**32 - 1))",
    "def test_audit_refuses_a_seed_numpy_cannot_take(seed, capsys):",
    "NumPy's generators refuse negative seeds",
    "seed the backward pass; seeded random search",
    "The tEXt chunks of a PNG (PNG spec, section 11.3.4.3)",
    "from .specs import SPECS, get_spec",
    "the tutorial's summary table (tutorial: Yes)",
])
def test_random_seeds_and_other_words_are_left_alone(line):
    assert forbidden_phrases("refattr/example.py", line) == []


@pytest.mark.parametrize("path, line, leaves", [
    ("README.md", "see `../shared/SPEC.md` section 9", True),  # quoted pattern
    ("refattr/interop/cli.py", 'open("../../../etc/passwd")', True),  # quoted pattern
    ("tests/interop/test_x.py", 'location="../secret.bin"', False),    # tests/secret.bin
    ("tests/interop/test_x.py", '"sub/../../secret.bin"', False),      # tests/secret.bin
    ("tests/interop/test_x.py", '"sub/../../../../secret.bin"', True),  # quoted pattern
    ("docs/axioms.md", "[the package](../refattr/axioms/audit.py)", False),
    ("refattr/methods/deeplift.py", "from ..layers import base  # a relative import, not a path", False),
])
def test_paths_are_resolved_from_the_files_folder(path, line, leaves):
    assert bool(paths_leaving_the_repository(path, line)) is leaves


def test_citations_are_checked_against_the_headings():
    docs = {"conventions.md": {"Kinks and ties", "Integrated gradients"}}
    text = ("(docs/conventions.md, section 'Kinks and ties'), docs/conventions.md, section\n"
            "    'Integrated gradients'; \"docs/conventions.md, section \"\n  \"'Kinks and ties'\"")
    assert unresolved_citations("refattr/x.py", text, docs) == []
    assert unresolved_citations("refattr/x.py", "docs/conventions.md, section 'Kinks'", docs)  # quoted pattern
    assert unresolved_citations("refattr/x.py", "see docs/missing.md", docs)  # quoted pattern
    assert unresolved_citations("refattr/x.py", "https://captum.ai/docs/introduction.md", docs) == []
    # inside docs/, a bare section reference names a heading of the same document
    assert unresolved_citations("docs/conventions.md", "see section 'Integrated gradients'", docs) == []
    assert unresolved_citations("docs/conventions.md", "see section 'Quadrature'", docs)


def test_markdown_links_are_checked_against_the_files():
    files = {"README.md", "docs/axioms.md", "figures/a.png"}
    assert broken_links("docs/README.md", "[a](axioms.md) [b](../figures/a.png) [c](#x) [d](https://x.org/y)",
                        files) == []
    assert broken_links("docs/README.md", "[a](conventions.md)", files)
    assert broken_links("README.md", "[a](../shared/SPEC.md)", files)  # quoted pattern
