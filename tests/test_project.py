"""A manifest's project identity: the ``project:`` key, else its git repository and the
manifest's path inside it; never an absolute path, never a credential."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deployer.state.project import normalize_remote, project_identity


def make_repository(root: Path, origin: str | None = None) -> Path:
    """A directory that git would see as a repository (only what deployer reads: .git/config)."""
    (root / ".git").mkdir(parents=True)
    config = '[core]\n\trepositoryformatversion = 0\n'
    if origin is not None:
        config += f'[remote "origin"]\n\turl = {origin}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n'
    (root / ".git" / "config").write_text(config)
    return root


@pytest.mark.parametrize(("url", "expected"), [
    ("https://github.com/acme/shop.git", "github.com/acme/shop"),
    ("git@github.com:acme/shop.git", "github.com/acme/shop"),
    ("ssh://git@github.com:22/acme/shop.git", "github.com/acme/shop"),
    ("https://gitlab-ci-token:glcbt-SECRET@GitLab.com/acme/shop.git", "gitlab.com/acme/shop"),
    ("https://x-access-token:ghs_SECRET@github.com/acme/shop/", "github.com/acme/shop"),
    ("/srv/git/shop.git", "shop"),
    ("file:///srv/git/shop.git", "shop"),
    ("../shop", "shop"),
])
def test_remote_is_named_by_host_and_path_without_credentials(url: str, expected: str) -> None:
    assert normalize_remote(url) == expected


def test_https_in_ci_and_ssh_on_a_laptop_are_the_same_project(tmp_path: Path) -> None:
    ci = make_repository(tmp_path / "runner" / "_work" / "a1b2", "https://github.com/acme/shop.git")
    laptop = make_repository(tmp_path / "home" / "me" / "shop", "git@github.com:acme/shop.git")
    for root in (ci, laptop):
        (root / "deploy").mkdir()
    assert project_identity(ci / "deploy" / "workers.yaml", None) == "github.com/acme/shop:deploy/workers.yaml"
    assert project_identity(laptop / "deploy" / "workers.yaml", None) == "github.com/acme/shop:deploy/workers.yaml"


def test_two_repositories_with_a_deploy_folder_are_two_projects(tmp_path: Path) -> None:
    a = make_repository(tmp_path / "repoA", "https://github.com/acme/a.git")
    c = make_repository(tmp_path / "repoC", "https://github.com/acme/c.git")
    assert project_identity(a / "deploy" / "workers.yaml", None) != project_identity(c / "deploy" / "workers.yaml", None)


def test_repository_without_remote_is_named_by_its_directory(tmp_path: Path) -> None:
    root = make_repository(tmp_path / "shop")
    assert project_identity(root / "infra" / "workers.yaml", None) == "shop:infra/workers.yaml"


def test_outside_any_repository_the_directory_and_file_name_it(tmp_path: Path) -> None:
    identity = project_identity(tmp_path / "deploy" / "workers.yaml", None)
    assert identity == "deploy/workers.yaml"
    assert str(tmp_path) not in identity


def test_project_key_wins_over_the_repository(tmp_path: Path) -> None:
    root = make_repository(tmp_path / "shop", "https://github.com/acme/shop.git")
    assert project_identity(root / "workers.yaml", "shop-api") == "shop-api"


def test_a_relative_manifest_path_gives_the_same_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repository(tmp_path / "shop", "https://github.com/acme/shop.git")
    (root / "deploy").mkdir()
    monkeypatch.chdir(root / "deploy")
    assert project_identity(Path("workers.yaml"), None) == "github.com/acme/shop:deploy/workers.yaml"


def test_origin_is_read_from_the_remote_origin_section_only(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text(
        '[remote "upstream"]\n\turl = https://github.com/other/fork.git\n'
        '[remote "origin"]  # ours\n\turl = "https://github.com/acme/shop.git" ; a comment\n'
    )
    assert project_identity(root / "workers.yaml", None) == "github.com/acme/shop:workers.yaml"


def test_a_linked_worktree_finds_the_remote_of_its_main_repository(tmp_path: Path) -> None:
    main = make_repository(tmp_path / "main", "git@github.com:acme/shop.git")
    (main / ".git" / "worktrees" / "feature").mkdir(parents=True)
    (main / ".git" / "worktrees" / "feature" / "commondir").write_text("../..\n")
    tree = tmp_path / "elsewhere" / "feature"
    tree.mkdir(parents=True)
    (tree / ".git").write_text(f"gitdir: {main / '.git' / 'worktrees' / 'feature'}\n")
    assert project_identity(tree / "workers.yaml", None) == "github.com/acme/shop:workers.yaml"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_repository_made_by_git_itself_is_read(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "remote", "add", "origin", "https://github.com/acme/shop.git"], check=True)
    assert project_identity(root / "sub" / "workers.yaml", None) == "github.com/acme/shop:sub/workers.yaml"
