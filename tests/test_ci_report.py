"""`codex-orch report --junit/--github-summary/--bundle` on real runs: what a CI job gets."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
import xmlschema
from conftest import TESTS, FakeCodex, Repo, answer, job, read_state, run_cli, run_plan, write_plan, writer

from codex_orch import __version__

# The Jenkins xunit-plugin schema (JUnit as Surefire and Ant write it), as pytest validates its own
# --junitxml output against it; see tests/schemas/README.md.
JUNIT_XSD = TESTS / "schemas" / "junit-10.xsd"
# What an answer may still carry once its values are checked (NUL and lone surrogates are refused there,
# untrusted.py): every other character XML 1.0 forbids.
HOSTILE = "bad\x01soh \x1b[31mred\x1b[0m \x08 ]]> <b>&amp; \ufffe end"
SECRET = "sk-ci-0123456789abcdef"  # given to the agent through codex.env
TOKEN = "ghp_ci_token_987654321"  # in the environment of the run and of the report


@pytest.fixture(scope="module")
def junit_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(JUNIT_XSD))


def ci_run(repo: Repo, fake: FakeCodex, tmp_path: Path) -> dict:
    """A and H succeed (H's summary is hostile), C fails, D is blocked by C."""
    rules = [
        writer("A", "a.txt"),
        {"match": "job H.", "turns": [[{"answer": answer(HOSTILE, [])}]]},
        {"match": "job C.", "turns": [[{"fail": "model exploded ]]> \x07"}]]},
    ]
    tasks = [job("A"), job("H"), job("C"), job("D", blocked_by=("C",), role="tester")]
    return run_plan(repo, fake, tmp_path, "ci", tasks, rules, expect=1)


def test_junit_validates_and_holds_a_case_per_task(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, junit_schema: xmlschema.XMLSchema
) -> None:
    state = ci_run(repo, fake_codex, tmp_path)
    out = tmp_path / "reports" / "junit.xml"  # its folder does not exist yet
    result = run_cli(repo.path, "report", "--run-id", "ci", "--junit", str(out))
    assert result.code == 0, result.err
    assert result.out.startswith("# codex-orch run ci — partial\n")  # the normal report still prints
    assert (repo.path / ".orchestrator/runs/ci/report.md").read_text() == result.out
    assert f"junit: written to {out}" in result.err

    junit_schema.validate(str(out))  # raises with the reason when the file does not conform
    suites = ElementTree.parse(out).getroot()
    assert suites.tag == "testsuites"
    (suite,) = suites
    assert suite.get("name") == "codex-orch run ci"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "4",
        "1",
        "0",
        "1",
    )
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["run_id"] == "ci" and props["status"] == "partial" and props["codex_orch_version"] == __version__
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == ["A", "H", "C", "D"]
    assert cases["A"].get("classname") == "ci.implementer" and cases["D"].get("classname") == "ci.tester"
    assert all(float(c.get("time") or "x") >= 0 for c in cases.values())

    a = cases["A"]
    assert a.find("failure") is None and a.find("skipped") is None
    out_a = a.findtext("system-out") or ""
    assert "summary: A" in out_a and f"commit: {state['tasks']['A']['commit']}" in out_a
    assert "files: a.txt" in out_a and "tokens: input 100" in out_a

    failure = cases["C"].find("failure")
    assert failure is not None
    assert failure.get("type") == "turn_failed"
    assert failure.get("message") == "model exploded ]]> \\x07"
    assert "attempt 1: turn_failed" in (failure.text or "")
    assert "The agent reported that its turn failed" in (failure.text or "")  # the hint from failures.py

    skipped = cases["D"].find("skipped")
    assert skipped is not None and skipped.get("message") == "blocked: waits for C, which did not succeed"

    # the hostile summary arrives, every character XML 1.0 forbids written out visibly
    hostile = cases["H"].findtext("system-out") or ""
    assert "summary: bad\\x01soh \\x1b[31mred\\x1b[0m \\x08 ]]> <b>&amp; \\ufffe end" in hostile


def test_junit_of_a_run_with_nothing_else(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """--junit combines with --json: the JSON is unchanged on stdout, the file is written."""
    run_plan(repo, fake_codex, tmp_path, "one", [job("A")], [writer("A", "a.txt")])
    out = tmp_path / "j.xml"
    plain = run_cli(repo.path, "report", "--run-id", "one", "--json")
    both = run_cli(repo.path, "report", "--run-id", "one", "--json", "--junit", str(out))
    assert both.code == 0, both.err
    assert json.loads(both.out) == json.loads(plain.out)
    assert ElementTree.parse(out).getroot()[0].get("failures") == "0"
    folder = tmp_path / "a-dir"
    folder.mkdir()
    refused = run_cli(repo.path, "report", "--run-id", "one", "--junit", str(folder))
    assert refused.code == 2 and "--junit" in refused.err and "is a directory" in refused.err


def test_github_summary_is_appended_once_per_call(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    state = ci_run(repo, fake_codex, tmp_path)
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    for _ in range(2):
        result = run_cli(repo.path, "report", "--run-id", "ci", "--github-summary", env=env)
        assert result.code == 0, result.err
        assert f"github summary: appended to {summary}" in result.err
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    assert text.count("### codex-orch run `ci`: partial") == 2
    assert "| task | role | status | failure kind | commit | tokens in/out |" in text
    assert f"| A | implementer | succeeded | - | `{state['tasks']['A']['commit'][:10]}` | 100/20 |" in text
    assert "| C | implementer | failed | turn_failed | - | 0/0 |" in text
    assert "| D | tester | blocked | blocked | - | 0/0 |" in text
    assert "**Totals:** 4 tasks (1 blocked, 1 failed, 2 succeeded); 3 attempts; tokens in 200, out 40" in text
    assert "bad" not in text  # the agents' own words stay out of the summary

    unset = run_cli(repo.path, "report", "--run-id", "ci", "--github-summary", env={"GITHUB_STEP_SUMMARY": ""})
    assert unset.code == 0
    assert "GITHUB_STEP_SUMMARY is not set" in unset.err and "no summary written" in unset.err
    assert unset.out.startswith("# codex-orch run ci")
    assert summary.read_text() == text
    nowhere = str(tmp_path / "no-such-dir" / "summary.md")
    bad = run_cli(repo.path, "report", "--run-id", "ci", "--github-summary", env={"GITHUB_STEP_SUMMARY": nowhere})
    assert bad.code == 2 and bad.err.startswith(
        f"codex-orch: error: --github-summary: GITHUB_STEP_SUMMARY names {nowhere}"
    )
    assert bad.out == ""


def bundle_members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def read_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_bundle_is_the_run_folder_redacted_with_an_index(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    repo.configure(codex={**fake_codex.config(DRILL_API_KEY=SECRET), "home": "isolated"})
    spec = tmp_path / "spec.md"
    spec.write_text(f"The deploy key is {SECRET}; the token is {TOKEN}.\n")  # spec.md is kept verbatim
    fake_codex.script(
        {
            "default": [
                [
                    {"shell": "echo key=$DRILL_API_KEY token=$GH_TOKEN"},
                    {"stderr": f"debug {SECRET} {TOKEN}"},
                    {"write": "out.txt", "content": "work"},
                    {"answer": answer(f"done with {SECRET}", ["out.txt"])},
                ]
            ]
        }
    )
    plan = write_plan(tmp_path / "plan.json", [job("A")])
    ran = run_cli(
        repo.path,
        *("run", "--plan-file", str(plan), "--spec-file", str(spec), "--run-id", "b", "--no-progress"),
        env={"GH_TOKEN": TOKEN},
    )
    assert ran.code == 0, ran.err
    folder = repo.path / ".orchestrator/runs/b"
    on_disk = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    assert SECRET.encode() in on_disk and TOKEN.encode() in on_disk  # the secrets were really in play

    # a hostile agent left links in its attempt folder, to a file and to a folder outside the run
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("OUTSIDE-CONTENT\n")
    attempt = folder / "tasks/A/attempt-1"
    (attempt / "evil.log").symlink_to(outside / "private.txt")
    (attempt / "evil-dir").symlink_to(outside)

    dest = tmp_path / "run-b.tar.gz"
    result = run_cli(repo.path, "report", "--run-id", "b", "--bundle", str(dest), env={"GH_TOKEN": TOKEN})
    assert result.code == 0, result.err
    assert f"bundle: written to {dest}" in result.err
    members = bundle_members(dest)
    assert all(m.isfile() for m in members.values())  # no links, no devices: only files
    contents = read_members(dest)
    for name, data in contents.items():
        assert SECRET.encode() not in data and TOKEN.encode() not in data, name
        assert b"OUTSIDE-CONTENT" not in data, name
    top = "codex-orch-run-b/"
    index = json.loads(contents[top + "index.json"])
    assert index["bundle_version"] == 1 and index["run_id"] == "b" and index["run_status"] == "succeeded"
    assert index["codex_orch_version"] == __version__
    assert sorted(index["redacted"]) == ["DRILL_API_KEY", "GH_TOKEN"]
    files = {f["path"]: f for f in index["files"]}
    for rel in ("state.json", "journal.jsonl", "plan.json", "spec.md", "report.md", "tasks/A/attempt-1/prompt.md"):
        assert rel in files and top + "run/" + rel in contents, rel
    events = files["tasks/A/attempt-1/events.jsonl"]
    assert events["what"] == "the agent's JSONL event stream"
    assert events["size"] == len(contents[top + "run/tasks/A/attempt-1/events.jsonl"])
    assert b"[REDACTED:DRILL_API_KEY]" in contents[top + "run/spec.md"]
    assert b"[REDACTED:GH_TOKEN]" in contents[top + "run/spec.md"]
    left_out = {f["path"]: f["why"] for f in index["left_out"]}
    assert left_out["tasks/A/attempt-1/evil.log"] == "a symbolic link (not followed)"
    assert left_out["tasks/A/attempt-1/evil-dir"] == "a symbolic link (not followed)"
    assert left_out["codex-home"].startswith("the agent's own CODEX_HOME")
    assert not any(n.startswith(top + "run/codex-home") for n in members)
    assert next(iter(members)) == top + "index.json"  # the index comes first

    # an existing file is kept unless --force
    before = dest.read_bytes()
    again = run_cli(repo.path, "report", "--run-id", "b", "--bundle", str(dest), "--junit", str(tmp_path / "j.xml"))
    assert again.code == 2
    assert again.err.startswith(f"codex-orch: error: --bundle: {dest} already exists")
    assert "--force" in again.err
    assert dest.read_bytes() == before and not (tmp_path / "j.xml").exists()  # nothing was written
    forced = run_cli(repo.path, "report", "--run-id", "b", "--bundle", str(dest), "--force", env={"GH_TOKEN": TOKEN})
    assert forced.code == 0, forced.err
    assert top + "index.json" in bundle_members(dest)
    inside = run_cli(repo.path, "report", "--run-id", "b", "--bundle", str(folder / "self.tar.gz"))
    assert inside.code == 2 and "inside the run folder" in inside.err
    assert not (folder / "self.tar.gz").exists()


def test_all_three_at_once(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    ci_run(repo, fake_codex, tmp_path)
    summary = tmp_path / "summary.md"
    junit = tmp_path / "junit.xml"
    bundle = tmp_path / "ci.tar.gz"
    args = ("--junit", str(junit), "--github-summary", "--bundle", str(bundle))
    result = run_cli(repo.path, "report", "--run-id", "ci", *args, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.code == 0, result.err
    assert junit.is_file() and "### codex-orch run `ci`" in summary.read_text()
    report_md = read_members(bundle)["codex-orch-run-ci/run/report.md"]
    assert report_md.decode() == result.out  # the bundle holds the report just written
    assert os.path.getsize(bundle) > 0
    assert read_state(repo, "ci")["status"] == "partial"  # reading never changes the run
