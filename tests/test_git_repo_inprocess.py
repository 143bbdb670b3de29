"""The git runner (git/repo.py) driven in-process, as codex-orch's commands and engine drive it: `Git` in
the user's checkout, `at` another checkout, the queries (`toplevel`, `branch_tip`, `changed_files`), a commit
with its staged diff handed to a check (the secret scan's `check_staged`), a failing command's message,
and `auto_maintenance` at a run's end.

Real git in real temporary repositories, nothing mocked. Each test asserts the whole outcome: the path,
the commit's author, the exact diff, the exact error message and hint, the objects git keeps. The CLI
tests reach the same code through codex-orch child processes, which mutation testing cannot see
(docs/testing.md, "What mutmut sees")."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from conftest import Repo, git, init_repo

from codex_orch.errors import GitError
from codex_orch.git.repo import FALLBACK_IDENTITY, Git, Status, auto_maintenance, local_changes, valid_branch_name


def head_of(repo: Repo) -> str:
    return repo.git("rev-parse", "HEAD")


# --- where the checkout is ------------------------------------------------------------------------
def test_toplevel_is_the_checkouts_root_whatever_git_variables_the_user_has(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`codex-orch` run in a sub-folder works on the checkout that holds it (engine/run.py `find_root`),
    even when the user's shell has GIT_DIR/GIT_WORK_TREE/GIT_INDEX_FILE naming another repository: they
    are scrubbed from codex-orch's own git (docs/security.md), so they never steer which repository it is."""
    other = init_repo(tmp_path / "other")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    sub = repo.path / "src" / "pkg"
    sub.mkdir(parents=True)

    assert Git(sub).toplevel() == repo.path.resolve()
    assert Git(repo.path).toplevel() == repo.path.resolve()


def test_toplevel_outside_any_repository_says_to_run_from_a_checkout(tmp_path: Path) -> None:
    """Outside a repository the user gets one line naming the folder and what to do, never git's words."""
    plain = tmp_path / "plain"
    plain.mkdir()
    # git looks no higher than tmp_path, wherever the temporary folder is
    runner = Git(plain, {"GIT_CEILING_DIRECTORIES": str(tmp_path)})

    with pytest.raises(GitError) as failed:
        runner.toplevel()

    assert (failed.value.message, failed.value.hint) == (
        f"{plain} is not inside a git repository.",
        "Run codex-orch from a checkout (git init first).",
    )


def test_at_another_checkout_keeps_the_runners_git_variables(repo: Repo, tmp_path: Path) -> None:
    """`Git.at` (a task's checkout in the worker, a checkout that is not one of codex-orch's worktrees)
    carries the GIT_* settings of the runner it came from: a runner told to commit as a given author
    commits as that author in the other checkout too, and the committer stays the repository's own."""
    other = init_repo(tmp_path / "other")
    (other / "new.txt").write_text("new\n")
    runner = Git(repo.path, {"GIT_AUTHOR_NAME": "Ann Author", "GIT_AUTHOR_EMAIL": "ann@example.com"})

    sha, files = runner.at(other).commit_changes("add new.txt", None, None)

    assert (sha, files) == (Git(other).head(), ["new.txt"])
    assert Git(other).run("log", "-1", "--format=%an <%ae>|%cn <%ce>|%s") == (
        "Ann Author <ann@example.com>|Test User <test@example.com>|add new.txt"
    )


# --- branches and commits -------------------------------------------------------------------------
def test_rev_names_exactly_one_commit_or_says_what_to_check(repo: Repo) -> None:
    """A run's base (git.base_ref) is one commit: a branch or sha gives it; a range (which git would
    answer with two lines) or a name that is not there is one line telling the user what to check."""
    git = Git(repo.path)
    assert git.rev("main") == head_of(repo)

    for ref in ("main..main", "no-such-branch"):
        with pytest.raises(GitError) as failed:
            git.rev(ref)
        assert (failed.value.message, failed.value.hint) == (
            f"'{ref}' is not a commit in this repository.",
            "Check git.base_ref, or make a first commit.",
        )


def test_local_branches_are_the_branch_names_only(repo: Repo) -> None:
    """`local_branches` (the names a run's branches must not take; the worker's clean-up) gives the local
    branches by name, every one or those under a prefix: never a tag, a remote-tracking branch or the
    refs codex-orch keeps under refs/orch/."""
    for branch in ("feature", "orch/r1/T1", "orch/r1/T2"):
        repo.git("branch", branch)
    repo.git("tag", "v1")
    repo.git("update-ref", "refs/orch/r1/quarantine/T1/1", "HEAD")
    repo.git("update-ref", "refs/remotes/origin/orch/r1/T3", "HEAD")
    git = Git(repo.path)

    assert git.local_branches() == {"main", "feature", "orch/r1/T1", "orch/r1/T2"}
    assert git.local_branches("orch/") == {"orch/r1/T1", "orch/r1/T2"}
    assert git.local_branches("nothing/") == set()


def test_a_branch_named_like_a_tag_is_listed_by_its_name(repo: Repo) -> None:
    """A branch whose name a tag also has is still listed by its own name (the worker deletes its
    branches by the names `local_branches` gives; until session 9 git's `refname:short` gave `heads/<name>`)."""
    repo.git("branch", "orch-worker/r1/T1")
    repo.git("tag", "orch-worker/r1/T1")

    assert Git(repo.path).local_branches("orch-worker/") == {"orch-worker/r1/T1"}


def test_local_changes_keep_the_runners_config(repo: Repo, tmp_path: Path) -> None:
    """`local_changes` of a runner given `-c` settings (clean's runner, with a worktree's
    `core.excludesFile` listing what codex-orch's setup made) applies them: a file the list excludes is
    not a change of the user's, so `clean` does not keep a worktree for it."""
    excludes = tmp_path / "excludes"
    excludes.write_text("setup.log\n")
    repo.write("setup.log", "made by the setup\n")
    repo.write("work.txt", "the agent's\n")
    repo.write("README.md", "changed\n")

    runner = Git(repo.path, config=(f"core.excludesFile={excludes}",))

    assert local_changes(runner) == [Status(" M", "README.md"), Status("??", "work.txt")]
    assert local_changes(runner, untracked=False) == [Status(" M", "README.md")]
    assert local_changes(Git(repo.path)) == [
        Status(" M", "README.md"),
        Status("??", "setup.log"),
        Status("??", "work.txt"),
    ]


def test_status_lists_each_change_by_its_path_and_ignored_files_only_when_asked(repo: Repo) -> None:
    """`status`: a changed file, a renamed one by its new path (the old one is not an entry of its own),
    each untracked file by its own path, never just its folder; ignored files only when asked for (`clean`
    and the guardrails look for them), untracked ones left out when not wanted."""
    repo.write(".gitignore", "*.log\n")
    repo.write("old.txt", "old\n")
    repo.git("add", ".gitignore", "old.txt")
    repo.git("commit", "-q", "-m", "ignore logs")
    repo.git("mv", "old.txt", "renamed.txt")
    repo.write("README.md", "# changed\n")
    repo.write("new/deep/file.txt", "new\n")
    repo.write("build.log", "log\n")
    git = Git(repo.path)
    tracked = [Status(" M", "README.md"), Status("R ", "renamed.txt")]

    assert git.status() == [*tracked, Status("??", "new/deep/file.txt")]
    assert git.status(ignored=True) == [*tracked, Status("??", "new/deep/file.txt"), Status("!!", "build.log")]
    assert git.status(untracked=False) == tracked


def test_branch_commit_reads_a_branch_however_the_repository_keeps_it(repo: Repo) -> None:
    """`branch_commit` reads git's own files where it can (a loose ref, a packed one) and asks git
    otherwise: a branch that is a symbolic ref to another, and every branch where the repository keeps its
    refs another way (a config naming refstorage makes it ask git, as a reftable would: git 2.39 here has
    none). A branch that does not exist, or a folder of branches, is None either way."""
    first = head_of(repo)
    repo.git("branch", "packed")
    repo.git("branch", "orch/T1")
    repo.git("pack-refs", "--all")
    repo.write("second.txt", "second\n")
    repo.git("add", "second.txt")
    repo.git("commit", "-q", "-m", "second")
    second = head_of(repo)
    repo.git("branch", "loose")
    repo.git("symbolic-ref", "refs/heads/alias", "refs/heads/loose")
    git = Git(repo.path)
    expected = {"main": second, "packed": first, "loose": second, "alias": second, "orch": None, "gone": None}

    assert {name: git.branch_commit(name) for name in expected} == expected
    repo.git("config", "test.refstorage", "files")
    assert {name: git.branch_commit(name) for name in expected} == expected


def git_takes_branch_name(repo: Repo, name: str) -> bool:
    done = subprocess.run(["git", "check-ref-format", "--branch", name], cwd=repo.path, capture_output=True)
    return done.returncode == 0


def test_a_branch_name_is_valid_exactly_when_git_takes_it(repo: Repo) -> None:
    """`valid_branch_name` applies git's rules without starting git: name by name it agrees with `git
    check-ref-format --branch`; only `@` (git's name for HEAD) is refused where git would take it."""
    names = [
        "orch/T1", "feature/a.b", "a@b", "x/@", "", "-x", "/x", "x/", "x.", "x.lock", "a.lock/b", "a/.b", ".x",
        "a..b", "a@{b", "a//b", "a b", "a~b", "a^b", "a:b", "a?b", "a*b", "a[b", "a\\b", "a\x01b", "a\x7fb",
    ]  # fmt: skip
    taken = {name: git_takes_branch_name(repo, name) for name in names}

    assert {name: valid_branch_name(name) for name in names} == taken
    assert [name for name, ok in taken.items() if ok] == ["orch/T1", "feature/a.b", "a@b", "x/@"]
    assert valid_branch_name("@") is False and Git(repo.path).valid_branch_name("@") is False


def test_a_worktrees_common_dir_is_the_repositorys_whatever_its_admin_dir_says(repo: Repo, tmp_path: Path) -> None:
    """git in a worktree codex-orch made has the repository's common dir from the Git that made it, never
    from the admin dir's `commondir` file (which git itself would read): one rewritten to name another
    repository changes nothing."""
    worktree = tmp_path / "wt"
    repo.git("worktree", "add", "-q", "--detach", str(worktree))
    admin = repo.path / ".git" / "worktrees" / "wt"
    other = init_repo(tmp_path / "other") / ".git"
    (admin / "commondir").write_text(f"{other}\n")
    git = Git(repo.path)

    child = git.worktree(worktree, admin)

    assert child.common_dir() == git.common_dir() == (repo.path / ".git").resolve()


def test_branch_tip_of_a_branch_that_is_gone_says_so(repo: Repo) -> None:
    """A run's branch deleted under it is a GitError naming the branch, with a hint, not a None."""
    repo.git("branch", "orch/T1")
    assert Git(repo.path).branch_tip("orch/T1") == head_of(repo)
    repo.git("branch", "-D", "orch/T1")

    with pytest.raises(GitError) as failed:
        Git(repo.path).branch_tip("orch/T1")

    assert (failed.value.message, failed.value.hint) == (
        "the branch orch/T1 is gone",
        "Was it deleted while the run went on?",
    )
    assert str(failed.value) == "the branch orch/T1 is gone. Was it deleted while the run went on?"


def test_changed_files_lists_every_file_of_a_commit_recursively(repo: Repo) -> None:
    """A task's commit reports each file it changed (engine/finish.py, the worker's partial commit):
    files deep in folders by their full path (never just the top folder), names with spaces whole, a
    deleted file too; and the root commit lists the files it added."""
    root = head_of(repo)
    repo.write("src/pkg/mod.py", "x = 1\n")
    repo.write("docs/user guide.md", "# guide\n")
    repo.write("top.txt", "top\n")
    repo.git("rm", "-q", "README.md")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "second")
    git = Git(repo.path)

    assert git.changed_files(head_of(repo)) == ["README.md", "docs/user guide.md", "src/pkg/mod.py", "top.txt"]
    assert git.changed_files(root) == ["README.md"]


def test_a_commit_of_listed_paths_holds_exactly_those(repo: Repo) -> None:
    """With `paths` (the changed files `status` listed that are the task's, in a shared worktree) the
    commit holds exactly them: a new file, one deleted, a name with a newline in it (the list goes to
    git NUL-separated); a change nobody listed stays in the worktree, uncommitted."""
    repo.write("a.txt", "a\n")
    repo.write("dir/line\nbreak.txt", "b\n")
    (repo.path / "README.md").unlink()
    repo.write("other.txt", "not this task's\n")
    listed = ["dir/line\nbreak.txt", "a.txt", "README.md"]
    git = Git(repo.path)

    sha, files = git.commit_changes("listed", listed, None)

    assert (sha, files) == (head_of(repo), ["README.md", "a.txt", "dir/line\nbreak.txt"]) and sha is not None
    assert git.changed_files(sha) == ["README.md", "a.txt", "dir/line\nbreak.txt"]
    assert git.status() == [Status("??", "other.txt")]


def test_an_extra_file_the_repository_ignores_is_committed_all_the_same(repo: Repo) -> None:
    """`extra` (the decisions file codex-orch appended to) is codex-orch's own record: it goes into the
    commit even where the repository's .gitignore ignores it (a task whose answer has decisions used to
    fail on git's refusal), whether the task's files are listed or not; the task's ignored files stay out."""
    repo.write(".gitignore", "docs/\n*.log\n")
    repo.git("add", ".gitignore")
    repo.git("commit", "-q", "-m", "ignore docs")
    git = Git(repo.path)

    for n, paths in enumerate((None, ["work1.txt"])):
        repo.write("docs/ai/decisions.md", f"## T{n}\n")
        repo.write(f"work{n}.txt", "work\n")
        repo.write("build.log", f"{n}\n")
        sha, files = git.commit_changes("task", paths, None, extra=["docs/ai/decisions.md"])

        assert sha == head_of(repo)
        assert (files, git.changed_files(sha)) == (["docs/ai/decisions.md", f"work{n}.txt"],) * 2
        assert repo.git("show", f"{sha}:docs/ai/decisions.md") == f"## T{n}"
        assert git.status() == []  # build.log: ignored, and left out


def test_has_identity_needs_both_a_name_and_an_email(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository has an identity of its own (so codex-orch commits under it, not the fallback) only
    when git finds both user.name and user.email."""
    bare_config = tmp_path / "empty-gitconfig"
    bare_config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(bare_config))
    git = Git(repo.path)
    assert git.has_identity() is False

    repo.git("config", "user.name", "Repo User")
    assert git.has_identity() is False
    repo.git("config", "--unset", "user.name")
    repo.git("config", "user.email", "repo@example.com")
    assert git.has_identity() is False
    repo.git("config", "user.name", "Repo User")
    assert git.has_identity() is True


# --- the staged diff a commit's check sees --------------------------------------------------------
def short_blob(repo: Repo, spec: str) -> str:
    return repo.git("rev-parse", "--short", spec)


def test_the_check_before_a_commit_sees_the_added_lines_as_git_wrote_them(repo: Repo) -> None:
    """`check_staged` (the secret scan) gets exactly the lines the commit adds: no context lines
    (`-U0`), a binary file's bytes as text (a secret in it is seen, not "Binary files differ"), a
    renamed file as a rename (its old lines are not new), a non-ASCII file name as it is (never
    quoted as octal escapes: the scan names the file and matches `secrets.allow` globs against it),
    and git's output whole, down to its last newline."""
    repo.write("notes.txt", "one\ntwo\nthree\nfour\nfive\n")
    repo.git("add", "notes.txt")
    repo.git("commit", "-q", "-m", "notes")
    old_notes = short_blob(repo, "HEAD:notes.txt")
    repo.write("notes.txt", "one\ntwo\nTHREE\nfour\nfive\n")
    (repo.path / "blob.bin").write_bytes(b"key=abc\x00def\n")
    repo.write("caf\u00e9.txt", "token\n")
    repo.git("mv", "README.md", "READ.md")
    seen: list[str] = []

    sha, _ = Git(repo.path).commit_changes("work", None, None, check_staged=seen.append)

    assert sha == head_of(repo)
    blob = short_blob(repo, "HEAD:blob.bin")
    cafe = short_blob(repo, "HEAD:caf\u00e9.txt")
    notes = short_blob(repo, "HEAD:notes.txt")
    assert seen == [
        "diff --git a/README.md b/READ.md\n"
        "similarity index 100%\n"
        "rename from README.md\n"
        "rename to READ.md\n"
        "diff --git a/blob.bin b/blob.bin\n"
        "new file mode 100644\n"
        f"index 0000000..{blob}\n"
        "--- /dev/null\n"
        "+++ b/blob.bin\n"
        "@@ -0,0 +1 @@\n"
        "+key=abc\x00def\n"
        "diff --git a/caf\u00e9.txt b/caf\u00e9.txt\n"
        "new file mode 100644\n"
        f"index 0000000..{cafe}\n"
        "--- /dev/null\n"
        "+++ b/caf\u00e9.txt\n"
        "@@ -0,0 +1 @@\n"
        "+token\n"
        "diff --git a/notes.txt b/notes.txt\n"
        f"index {old_notes}..{notes} 100644\n"
        "--- a/notes.txt\n"
        "+++ b/notes.txt\n"
        "@@ -3 +3 @@ two\n"  # the nearest line above that starts with a letter (git's default)
        "-three\n"
        "+THREE\n"
    ]


# --- a failing command's message ------------------------------------------------------------------
def test_a_failing_command_names_itself_and_gits_first_line_cut_at_400_characters(repo: Repo) -> None:
    """A git error becomes one line: the command (its first three words) and the first line of what git
    said, cut at 400 characters, so a huge argument echoed back (a pathspec, a revision) cannot flood
    the user's one-line message."""
    wrong = "/".join(["y" * 50] * 8)  # 407 characters, no path component too long to stat

    with pytest.raises(GitError) as failed:
        Git(repo.path).run("log", "--format=%H", "-1", wrong)

    said = f"fatal: ambiguous argument '{wrong}'"[:400]
    assert (failed.value.message, failed.value.hint) == (f"git log --format=%H -1 failed: {said}", None)


def test_git_speaks_english_to_codex_orch_whatever_language_the_user_asked_for(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """codex-orch reads git's words (the index lock it waits on, the errors it reports), so its git runs in
    the C locale: a user who asked for German messages (LANGUAGE=de, which git's translations follow in
    the C.UTF-8 locale) still gets git's English ones from codex-orch."""
    monkeypatch.setenv("LANGUAGE", "de")
    monkeypatch.setenv("LANG", "C.UTF-8")
    users = subprocess.run(["git", "rev-parse", "--verify", "nope"], cwd=repo.path, capture_output=True, text=True)
    if not users.stderr.startswith("Schwerwiegend"):
        pytest.skip("git has no German messages on this machine")

    with pytest.raises(GitError) as failed:
        Git(repo.path).run("rev-parse", "--verify", "nope")

    assert failed.value.message == "git rev-parse --verify nope failed: fatal: Needed a single revision"


def test_a_command_failing_without_a_word_says_there_was_no_message(repo: Repo) -> None:
    """git fails some commands silently (a config key that is not set exits 1): the message says so
    rather than ending at "failed:"."""
    with pytest.raises(GitError) as failed:
        Git(repo.path).run("config", "no.such.key")

    assert (failed.value.message, failed.value.hint) == ("git config no.such.key failed: (no message)", None)


def test_git_missing_from_path_is_one_line_saying_to_install_it(repo: Repo, tmp_path: Path) -> None:
    """git is looked for on the PATH of the runner's environment; when it is not there the user gets
    one line and a hint, not a traceback."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()

    with pytest.raises(GitError) as failed:
        Git(repo.path, {"PATH": str(empty)}).run("status")

    assert (failed.value.message, failed.value.hint) == (
        "git is not installed or not on PATH.",
        "Install git and try again.",
    )


# a file name that is not UTF-8 (Latin-1 "café.txt"), as git prints it and as Python holds it
LATIN1_NAME = b"caf\xe9.txt"
HELD_NAME = LATIN1_NAME.decode("utf-8", "surrogateescape")


def test_file_names_that_are_not_utf8_survive_the_round_trip(repo: Repo) -> None:
    """A file name of any encoding is read from git's output (status, the files of a commit, an error
    naming it) and given back to git unchanged: undecodable bytes are kept, never a crash."""
    (repo.path / os.fsdecode(LATIN1_NAME)).write_bytes(b"x\n")
    git = Git(repo.path)

    assert git.status() == [Status("??", HELD_NAME)]
    sha, files = git.commit_changes("latin-1", None, None)
    assert sha is not None and files == [HELD_NAME] and git.changed_files(sha) == [HELD_NAME]
    tree = subprocess.run(["git", "ls-tree", "-z", "--name-only", sha], cwd=repo.path, capture_output=True, check=True)
    assert tree.stdout == b"README.md\0" + LATIN1_NAME + b"\0"  # committed under its own bytes
    missing = "gone-" + HELD_NAME
    with pytest.raises(GitError) as failed:
        git.run("rm", "-q", missing)
    assert (failed.value.message, failed.value.hint) == (
        f"git rm -q {missing} failed: fatal: pathspec '{missing}' did not match any files",
        None,
    )


def test_listed_paths_that_are_not_utf8_are_committed(repo: Repo) -> None:
    """In a shared worktree a task's commit stages the changed files `status` listed (git/workspace.py):
    one whose name is not UTF-8 is committed like any other (until session 9: a UnicodeEncodeError)."""
    (repo.path / os.fsdecode(LATIN1_NAME)).write_bytes(b"x\n")
    git = Git(repo.path)

    sha, files = git.commit_changes("latin-1", [e.path for e in git.status()], None)

    assert (sha, files) == (head_of(repo), [HELD_NAME]) and sha is not None
    assert git.changed_files(sha) == [HELD_NAME]


# --- git's upkeep at a run's end ------------------------------------------------------------------
def objects(repo: Repo) -> tuple[int, int]:
    """(loose objects, packs) as `git count-objects` counts them."""
    counts = dict(line.split(": ") for line in repo.git("count-objects", "-v").splitlines())
    return int(counts["count"]), int(counts["packs"])


def commit_loose_objects(repo: Repo) -> int:
    """A commit of three files whose blobs git files under objects/17/: the folder `gc --auto` samples
    to estimate the loose objects (over gc.auto/256 of them there: too many). Returns the loose count."""
    made, i = 0, 0
    while made < 3:
        data = f"{i}\n".encode()
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith("17"):
            (repo.path / f"f{i}.txt").write_bytes(data)
            made += 1
        i += 1
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "loose objects")
    loose, packs = objects(repo)
    assert loose > 3 and packs == 0
    return loose


@pytest.mark.parametrize(
    ("config", "packed"),
    [
        ({"gc.auto": "1"}, True),
        ({"gc.auto": "1", "maintenance.auto": "no"}, False),
        ({"gc.auto": "1", "maintenance.auto": "false"}, False),
        ({}, False),
    ],
    ids=["over-threshold", "maintenance.auto=no", "maintenance.auto=false", "under-threshold"],
)
def test_auto_maintenance_packs_only_when_git_itself_would(repo: Repo, config: dict[str, str], packed: bool) -> None:
    """At a run's end codex-orch does once the upkeep git does after each commit (`git maintenance run
    --auto`): the loose objects are packed when git's own threshold (gc.auto) is passed, never below it,
    and never when the repository says maintenance.auto is off (in any of git's words for false)."""
    loose = commit_loose_objects(repo)
    repo.git("config", "gc.autoDetach", "false")  # git packs before returning, not in the background
    repo.git("config", "maintenance.autoDetach", "false")
    for key, value in config.items():  # set after the commit, which runs git's own upkeep
        repo.git("config", key, value)

    auto_maintenance(Git(repo.path))

    assert objects(repo) == ((0, 1) if packed else (loose, 0))


def test_a_commit_lists_both_paths_of_a_renamed_file(repo: Repo) -> None:
    """The files a task's commit changed (its `files_changed`: the answer's claims are checked against
    them, landing runs forecast conflicts from them) include both paths of a file it renamed, as
    `changed_files` gives them for the same commit when a resumed run adopts it (until session 9 git's
    rename detection left the old path out)."""
    repo.git("mv", "README.md", "READ.md")
    git = Git(repo.path)

    sha, files = git.commit_changes("rename", None, None)

    assert sha == head_of(repo)
    assert git.changed_files(sha) == ["READ.md", "README.md"]
    assert files == ["READ.md", "README.md"]


@pytest.mark.parametrize(
    ("identity", "who"),
    [(None, "Test User <test@example.com>"), (FALLBACK_IDENTITY, "codex-orch <codex-orch@localhost>")],
    ids=["repository-identity", "fallback-identity"],
)
def test_codex_orchs_commits_run_no_upkeep_of_their_own(repo: Repo, identity: tuple[str, str] | None, who: str) -> None:
    """A commit codex-orch makes never starts git's upkeep (`maintenance.auto=false` on the commit: the
    run does it once, at its end), with the repository's identity or the fallback one it commits under
    when the repository has none; and that fallback identity is its author and committer."""
    loose = commit_loose_objects(repo)
    repo.git("config", "gc.auto", "1")  # git's upkeep would pack now...
    repo.git("config", "gc.autoDetach", "false")  # ...before the commit returns
    repo.git("config", "maintenance.autoDetach", "false")
    repo.write("task.txt", "done\n")

    sha, files = Git(repo.path).commit_changes("task", None, identity)

    assert (sha, files) == (head_of(repo), ["task.txt"])
    assert repo.git("log", "-1", "--format=%an <%ae>|%cn <%ce>|%s") == f"{who}|{who}|task"
    assert objects(repo) == (loose + 3, 0)  # the commit's blob, tree and commit, loose beside the others


def test_git_in_a_folder_that_is_gone_says_so_not_that_git_is_missing(repo: Repo, tmp_path: Path) -> None:
    """A worktree removed under codex-orch (by hand, by an agent) is named as the problem; git is there
    (until session 9 the message said to install git)."""
    gone = tmp_path / "gone"

    with pytest.raises(GitError) as failed:
        Git(gone).run("status")

    assert (failed.value.message, failed.value.hint) == (f"cannot run git in {gone}: the folder does not exist", None)


@pytest.mark.parametrize(
    ("committed", "text", "ours"),
    [
        ("node_modules/\n", "node_modules/\n.orchestrator/runs/\n.orchestrator/worktrees/  \n# codex-orch's\n", True),
        ("node_modules/\n", "node_modules/\n.codex-mem/\ndist/\n", False),  # a line of the user's besides
        ("node_modules/\n", ".orchestrator/runs/\n", False),  # node_modules/ taken out
        ("node_modules/\n", None, False),  # nothing changed
        (".orchestrator/runs/\n.codex-mem/\n", None, False),  # codex-orch's lines, committed already
        (None, ".orchestrator/runs/\n.codex-mem/\n", True),  # a new .gitignore of codex-orch's lines only
        (None, ".orchestrator/runs/\nsecrets.env\n", False),
        (None, None, False),  # no .gitignore at all
    ],
)
def test_a_gitignore_holding_only_codex_orchs_lines_is_not_the_users_change(
    repo: Repo, committed: str | None, text: str | None, ours: bool
) -> None:
    """`init` adds its lines to .gitignore; a run started before they are committed does not warn about
    them (engine/drive.py `uncommitted_warning`), and warns about any other change to the file. A
    .gitignore with nothing uncommitted (or none at all) holds no lines of codex-orch's to leave out."""
    from codex_orch.engine.drive import only_our_gitignore_lines

    if committed is not None:
        repo.write(".gitignore", committed)
        repo.git("add", ".gitignore")
        repo.git("commit", "-q", "-m", "ignore")
    if text is not None:
        repo.write(".gitignore", text)

    assert only_our_gitignore_lines(Git(repo.path)) is ours


def test_a_new_gitignore_that_is_not_utf8_is_the_users(repo: Repo) -> None:
    """An untracked .gitignore is read whole; a line in another encoding (Latin-1 here) is read with
    its undecodable bytes replaced, and is a line of the user's, not a failure."""
    from codex_orch.engine.drive import only_our_gitignore_lines

    (repo.path / ".gitignore").write_bytes(b".orchestrator/runs/\ncaf\xe9/\n")

    assert only_our_gitignore_lines(Git(repo.path)) is False


def test_a_gitignore_in_a_repository_without_a_commit_is_not_taken_for_codex_orchs(tmp_path: Path) -> None:
    """No HEAD to compare with: the file is not said to be codex-orch's lines only."""
    from codex_orch.engine.drive import only_our_gitignore_lines

    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text(".orchestrator/runs/\n")

    assert only_our_gitignore_lines(Git(tmp_path)) is False


def test_the_uncommitted_warning_names_three_changes_and_counts_the_rest(repo: Repo) -> None:
    """A run starts from a commit; the warning at its start names the first three changes the checkout
    holds and how many more there are. A clean checkout gives none."""
    from codex_orch.engine.drive import uncommitted_warning

    git = Git(repo.path)
    assert uncommitted_warning(git, ()) is None
    for name in "abcde":
        repo.write(f"{name}.txt", "new\n")

    assert uncommitted_warning(git, ()) == (
        f"5 uncommitted change(s) in {repo.path} (a.txt, b.txt, c.txt and 2 more) are not part of this run: "
        "it starts from a commit (git.base_ref). Commit them first if the agents need them."
    )


def test_the_uncommitted_warning_leaves_out_what_the_run_sees_or_owns(repo: Repo, tmp_path: Path) -> None:
    """Left out of the warning: codex-orch's own folder, the run's input files (a plan inside the
    checkout; one outside it is no change of the checkout's), codex-orch's lines in .gitignore, and the
    untracked files `worktree.copy_files` copies into each worktree. A tracked file matching a copy
    pattern is not copied: its change is warned about, like any file no pattern matches."""
    from codex_orch.engine.drive import uncommitted_warning

    repo.write("README.md", "# changed\n")  # tracked, matches *.md
    repo.write(".env", "KEY=1\n")
    repo.write("config/app.local", "local\n")
    repo.write("notes.txt", "mine\n")
    repo.write("plan.json", "{}\n")
    repo.write(".orchestrator/orchestrator.yaml", "{}\n")
    repo.write(".gitignore", ".orchestrator/runs/\n")
    inputs = (repo.path / "plan.json", tmp_path / "outside.json")

    warning = uncommitted_warning(Git(repo.path), inputs, copied=(".env", "config/*.local", "*.md"))

    assert warning == (
        f"2 uncommitted change(s) in {repo.path} (README.md, notes.txt) are not part of this run: "
        "it starts from a commit (git.base_ref). Commit them first if the agents need them."
    )
