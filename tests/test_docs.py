"""The README, docs/ and the benchmarks pages: short enough to read, every relative link and anchor resolving, every
headline number the same as the run it comes from, no work-log wording."""
import json
import re

import pytest
from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def words(markdown):
    """Words a reader reads: prose and code, without link targets and image paths."""
    return len(re.sub(r"\]\([^)]*\)", "]", markdown).split())


def anchors(page):
    """GitHub's anchors of a page's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_readme_is_read_in_five_minutes():
    assert words((ROOT / "README.md").read_text()) <= 1500


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(resolved), f"{page.name}: no heading #{anchor} in {resolved.name}"


def test_readme_results_are_the_documented_runs_own():
    """The README's numbers of the documented default run are those of examples/, the files that run published."""
    metrics = json.loads((ROOT / "examples" / "metrics.json").read_text())
    history = (ROOT / "examples" / "history.csv").read_text().splitlines()
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| synthetic test set"))
    assert f"{metrics['iou']:.3f}" in row and f"{metrics['f1']:.3f}" in row
    assert f"{len(history) - 1} epochs" in row


# How the work was organised is no reader's business: days of work counted, issue numbers.
WORK_LOG = re.compile(r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|this|"
                      r"last|next|previous|the) sessions?\b|\bissue \d+|\bissue's\b|(?:^|\s)#\d+\b(?![-\w])",
                      re.IGNORECASE)


def test_the_benchmarks_page_is_a_reference_of_at_most_300_lines():
    assert len((ROOT / "benchmarks" / "README.md").read_text().splitlines()) <= 300


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_pages_hold_no_work_log_wording(page):
    found = [f"{number}: {line.strip()[:100]}" for number, line in enumerate(page.read_text().splitlines(), 1)
             if WORK_LOG.search(line)]
    assert not found, f"{page.name} says how the work was organised:\n" + "\n".join(found)


def test_the_work_log_check_catches_what_it_is_for():
    for line in ("the ninth session's run", "measured in this session", "issue 23 asks", "see #41"):
        assert WORK_LOG.search(line), line
    for line in ("a live Jupyter session", "an issue of memory", "[run](HISTORY.md#2026-12-03-x)"):
        assert not WORK_LOG.search(line), line
