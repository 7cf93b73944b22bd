"""The documentation stays true to the repository: every doc (README.md, CHANGELOG.md and the
other top-level pages, docs/**/*.md) links and names only files that exist in it, cites no path
of one machine, no file from outside the repository and no issue number; the JSON pages under
docs/ (the benchmarks' records) parse and hold no path of the machine they ran on; and the README
stays within the budget a newcomer reads in five minutes."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_BUDGET = 10_000  # characters

URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+|mailto:\S+", re.IGNORECASE)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# directories that exist on one machine (a workspace, a home, a scratch or temporary place)
MACHINE_PATH = re.compile(
    r"(?<![\w.~-])/(?:work|home|Users|root|mnt|scratch|tmp|var/folders)/[^\s`'\"()<>\[\],;]*"
)
# in a JSON record, any string (key or value) with an absolute path under a machine's own folders,
# a home-relative one or a virtual environment's: a record gives repository-relative paths
JSON_MACHINE_PATH = re.compile(
    r"(?<![\w.~-])(?:~/|/(?:work|workspace|tmp|root|home|Users|usr|opt|mnt|media|scratch|srv|var"
    r"|private|Volumes|nfs)(?![\w.-]))[^\s`'\"()<>\[\],;]*"
    r"|[^\s`'\"()<>\[\],;]*\.venv/[^\s`'\"()<>\[\],;]*"
)
PARENT_PATH = re.compile(r"(?<![\w/.-])(?:\.\./)+[\w.-][^\s`'\"()<>\[\],;]*")
ISSUE_NUMBER = re.compile(r"\bissues?\s*(?:no\.\s*)?#?\d+|(?<![\w&/#])#\d+\b", re.IGNORECASE)
MARKDOWN_NAME = re.compile(r"(?<![\w/.-])([\w-][\w./-]*\.md)\b")
# a mention such as `model/rnn.py` or docs/api.md: its first part is a tracked top-level folder
TOP_FOLDERS = ("model", "app", "bench", "deploy", "tests", "docs", ".ci")
REPO_PATH = re.compile(
    r"(?<![\w./~-])((?:" + "|".join(re.escape(f) for f in TOP_FOLDERS) + r")/[\w./-]*)"
)
# where the code names a path it uses at run time (such a path is the project's, not a machine's)
SOURCE_GLOBS = ("model/**/*.py", "app/**/*.py", "deploy/**/*", "Dockerfile", "*.yml", "Makefile")


def project_docs(root: Path = ROOT) -> list[Path]:
    """Every markdown page a reader of the repository meets."""
    return sorted({*root.glob("*.md"), *(root / "docs").rglob("*.md")})


def json_pages(root: Path = ROOT) -> list[Path]:
    """Every JSON page under docs/: the benchmarks' records, which the pages cite."""
    return sorted((root / "docs").rglob("*.json"))


@functools.lru_cache(maxsize=4)
def _source_text(root: Path) -> str:
    """The code and deployment files, to tell a path the project uses from a machine's."""
    files = {path for pattern in SOURCE_GLOBS for path in root.glob(pattern) if path.is_file()}
    return "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in sorted(files))


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _exists_in_repo(doc: Path, name: str, root: Path) -> bool:
    """Whether name, read from doc's folder or from the repository root, is a file or folder
    of the repository."""
    return any(_inside(base / name, root) and (base / name).exists() for base in (doc.parent, root))


def _link_problems(doc: Path, text: str, root: Path) -> list[tuple[str, str]]:
    """(target, problem) of markdown links and images whose target is not in the repository."""
    problems = []
    for target in LINK.findall(text):
        if URL.match(target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        resolved = (root / path.lstrip("/")) if path.startswith("/") else doc.parent / path
        if not _inside(resolved, root):
            problems.append((path, f"links {target}, outside the repository"))
        elif not resolved.exists():
            problems.append((path, f"links {target}, which does not exist"))
    return problems


def _citation_problems(doc: Path, text: str, root: Path) -> list[tuple[str, str]]:
    """(citation, problem) of paths of one machine, paths leaving the repository, issue
    numbers, and repository files or markdown pages named in the text that do not exist."""
    problems = []
    for path in (p.rstrip(".:") for p in MACHINE_PATH.findall(text)):
        if path not in _source_text(root):
            problems.append((path, f"cites {path}, a path of one machine"))
    for path in (p.rstrip(".:") for p in PARENT_PATH.findall(text)):
        if not _inside(doc.parent / path, root):
            problems.append((path, f"cites {path}, outside the repository"))
        elif not (doc.parent / path).exists():
            problems.append((path, f"cites {path}, which does not exist"))
    for match in ISSUE_NUMBER.finditer(text):
        problems.append((match.group(0), f"cites an issue number ({match.group(0)})"))
    for name in MARKDOWN_NAME.findall(text):
        if not _exists_in_repo(doc, name, root):
            problems.append((name, f"names {name}, which is not in the repository"))
    for path in (p.rstrip(".,:") for p in REPO_PATH.findall(text)):
        if not (root / path).exists():
            problems.append((path, f"names {path}, which does not exist"))
    return problems


def doc_problems(doc: Path, root: Path = ROOT) -> list[str]:
    """What in one doc points outside the repository or at nothing, once per cited thing
    (empty when the doc is clean)."""
    text = doc.read_text(encoding="utf-8")
    prose = URL.sub(" ", text)  # addresses on the web are not citations of files
    found = _link_problems(doc, text, root) + _citation_problems(doc, prose, root)
    first_problem: dict[str, str] = {}
    for cited, problem in found:
        first_problem.setdefault(cited, problem)
    return list(first_problem.values())


def _json_strings(value: object, where: str = "$") -> list[tuple[str, str]]:
    """(where, string) of every string in a parsed JSON value, its object keys included."""
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, list):
        return [
            found for i, item in enumerate(value) for found in _json_strings(item, f"{where}[{i}]")
        ]
    if isinstance(value, dict):
        return [
            found
            for key, item in value.items()
            for found in [(f"{where} (a key)", key), *_json_strings(item, f"{where}.{key}")]
        ]
    return []


def json_problems(page: Path) -> list[str]:
    """Why one JSON page is not fit to publish, once per cited path: it does not parse, or a
    string in it names a path of the machine it was made on (empty when the page is clean)."""
    try:
        record = json.loads(page.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return [f"{page.name} is not valid JSON: {error}"]
    first_problem: dict[str, str] = {}
    for where, text in _json_strings(record):
        for path in JSON_MACHINE_PATH.findall(text):
            first_problem.setdefault(path, f"{where} cites {path}, a path of one machine")
    return list(first_problem.values())


def readme_problems(readme: Path) -> list[str]:
    """The README's length when it is over its budget."""
    length = len(readme.read_text(encoding="utf-8"))
    if length <= README_BUDGET:
        return []
    return [f"{readme.name} is {length:,} characters; the budget is {README_BUDGET:,}"]


@pytest.mark.parametrize("doc", project_docs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_points_only_at_files_of_the_repository(doc):
    """Each page's links and citations resolve inside the repository, for any reader's clone."""
    problems = doc_problems(doc)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", json_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_json_page_parses_and_holds_no_path_of_one_machine(page):
    """Each benchmark record parses and gives repository-relative commands and paths, so that
    a reader can rerun it in their own clone."""
    problems = json_problems(page)
    assert not problems, "\n".join(problems)


def test_readme_is_within_its_budget():
    """The README stays short enough to read in five minutes."""
    problems = readme_problems(ROOT / "README.md")
    assert not problems, problems[0] if problems else ""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_check_finds_every_kind_of_bad_citation(tmp_path):
    """The Markdown check can fail: a page with each kind of bad citation is caught on each."""
    _write(tmp_path / "model" / "rnn.py", "")
    _write(tmp_path / "docs" / "api.md", "# API\n")
    bad = _write(
        tmp_path / "docs" / "bad.md",
        "See [the API](api.md), [gone](gone.md), [up](../../elsewhere.md) and ![c](c.png).\n"
        "Runs live in /work/runs/ttp and /tmp/scratch; corpora in ../../shared/corpora, ../data.\n"
        "As issue 6 and #14 ask, DATA.md defines it; model/rnn.py and model/forward.py.\n",
    )
    problems = "\n".join(doc_problems(bad, tmp_path))
    for expected in (
        "links gone.md, which does not exist",
        "links ../../elsewhere.md, outside the repository",
        "links c.png, which does not exist",
        "cites /work/runs/ttp, a path of one machine",
        "cites /tmp/scratch",
        "cites ../../shared/corpora, outside the repository",
        "cites ../data, which does not exist",
        "cites an issue number (issue 6)",
        "cites an issue number (#14)",
        "names DATA.md, which is not in the repository",
        "names model/forward.py, which does not exist",
    ):
        assert expected in problems
    assert "api.md," not in problems and "model/rnn.py," not in problems


def test_a_clean_doc_passes_and_a_path_the_code_uses_is_not_a_machines(tmp_path):
    """The Markdown check passes good pages: web addresses and paths the code itself uses."""
    _write(tmp_path / "deploy" / "serve.sh", 'DIR="${DIR:-/tmp/nextword-metrics}"\n')
    _write(tmp_path / "README.md", "# x\n")
    doc = _write(
        tmp_path / "docs" / "ok.md",
        "[Home](../README.md), <https://example.org/issues/6>, metrics in "
        "`/tmp/nextword-metrics`, the code in deploy/serve.sh.\n",
    )
    assert doc_problems(doc, tmp_path) == []


def test_a_readme_over_its_budget_fails(tmp_path):
    """The budget check can fail: one character over it is reported."""
    assert readme_problems(_write(tmp_path / "README.md", "x" * README_BUDGET)) == []
    (problem,) = readme_problems(_write(tmp_path / "README.md", "x" * (README_BUDGET + 1)))
    assert "10,001 characters" in problem


def test_the_json_check_finds_machine_paths_and_invalid_json(tmp_path):
    """The JSON check can fail: a copy of a real record with a machine's paths put back in it,
    and a page that does not parse, are caught; the repository's own record passes."""
    original = ROOT / "docs" / "precision.json"
    record = json.loads(original.read_text(encoding="utf-8"))
    record["command"] += " --work-dir /work/runs/precision"
    record["runs"][0]["command"][0] = "/home/me/nextword/.venv/bin/python"
    record["runs"][0]["log"] = "/tmp/precision/base.log"
    record["runs"][0]["/opt/run"] = 1
    copy = _write(tmp_path / "docs" / "precision.json", json.dumps(record, indent=2) + "\n")
    problems = "\n".join(json_problems(copy))
    for expected in (
        "$.command cites /work/runs/precision, a path of one machine",
        "$.runs[0].command[0] cites /home/me/nextword/.venv/bin/python",
        "$.runs[0].log cites /tmp/precision/base.log",
        "$.runs[0] (a key) cites /opt/run",
    ):
        assert expected in problems
    assert json_problems(original) == []
    broken = _write(tmp_path / "docs" / "broken.json", '{"command": "python -m bench.serve",}\n')
    (problem,) = json_problems(broken)
    assert "broken.json is not valid JSON" in problem


def test_a_clean_json_record_passes(tmp_path):
    """Relative paths, commands, slashed keys and the API's own routes are no machine's paths."""
    clean = {
        "command": "python -m bench.recipe --work-dir runs/precision",
        "runs": [{"command": ["python", "-m", "model.train", "--output", "runs/precision/base"]}],
        "batched/32": {"tokens_per_s": 1251.1},
        "checkpoint": "checkpoints/default",
        "corpus": "../shared/corpora/wikitext-2/valid.txt",
        "routes": ["/generate", "/v1/completions", "/health"],
    }
    page = _write(tmp_path / "docs" / "clean.json", json.dumps(clean, indent=2) + "\n")
    assert json_problems(page) == []


# -- the layout the README and docs/architecture.md draw --------------------------------------
LAYOUT_FOLDERS = (
    "model",
    "model/train",
    "model/evaluate",
    "app",
    "app/routes",
    "app/v1",
    "app/engine",
)


def modules_of(folder: str, root: Path = ROOT) -> list[str]:
    """The module names of one source folder (its __init__ and __main__ left out)."""
    return sorted(
        path.stem
        for path in (root / folder).glob("*.py")
        if path.stem not in ("__init__", "__main__")
    )


def layout_entries(readme: str) -> dict[str, str]:
    """The README's Layout block as {folder: the words of its entry}."""
    block = readme.split("## Layout", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    entries: dict[str, str] = {}
    folder = ""
    for line in block.splitlines():
        head = line.split(maxsplit=1)
        if line[:1].strip() and head:
            folder = head[0].rstrip("/")
            entries[folder] = line[len(head[0]) :]
        elif folder:
            entries[folder] += " " + line
    return entries


def layout_problems(readme: str, root: Path = ROOT) -> list[str]:
    """Where the README's Layout and the source tree disagree: a source folder without its
    entry, a module its folder's entry does not name, an entry for a folder that is not there."""
    entries = layout_entries(readme)
    problems = [f"no entry for {folder}/" for folder in LAYOUT_FOLDERS if folder not in entries]
    for folder in LAYOUT_FOLDERS:
        words = set(re.findall(r"\w+", entries.get(folder, "")))
        problems += [
            f"{folder}/ does not name {name}"
            for name in modules_of(folder, root)
            if name not in words
        ]
    problems += [f"{folder}/ does not exist" for folder in entries if not (root / folder).is_dir()]
    return problems


def test_readme_layout_matches_the_tree() -> None:
    """`ls model app` and the README's Layout agree, folder by folder and module by module."""
    assert not layout_problems((ROOT / "README.md").read_text(encoding="utf-8"))


def test_layout_check_catches_a_module_the_readme_does_not_name() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert layout_problems(readme.replace("runner", "")) == ["model/ does not name runner"]


def test_architecture_names_every_module_and_only_real_ones() -> None:
    """docs/architecture.md's tree draws the top-level modules of model/ and app/ by name and
    every folder below them; every module it names exists."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = page.split("```text", 1)[1].split("```", 1)[0]
    named = set(re.findall(r"(\w+)\.py", tree))
    for folder in ("model", "app"):
        missing = [name for name in modules_of(folder) if name not in named]
        assert not missing, f"docs/architecture.md's tree does not name {folder}/{missing}"
    for folder in (f for f in LAYOUT_FOLDERS if "/" in f):
        assert f"  {folder.split('/')[1]}/" in tree, f"the tree does not show {folder}/"
    real = {name for folder in LAYOUT_FOLDERS for name in modules_of(folder)}
    assert named <= real, f"the tree names modules that do not exist: {sorted(named - real)}"
