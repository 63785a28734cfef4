"""``.assetsignore``: the gitignore subset wrangler honours, pattern by pattern."""
from __future__ import annotations

import pytest

from deployer.manifest.assetsignore import IgnoreRules


@pytest.mark.parametrize(("rules", "path", "is_dir", "ignored"), [
    # a name without a slash matches at any depth, files and directories alike
    ("*.map", "app.js.map", False, True),
    ("*.map", "js/deep/app.js.map", False, True),
    ("*.map", "app.js", False, False),
    ("drafts", "drafts", True, True),
    ("drafts", "blog/drafts", True, True),
    ("drafts", "drafts.html", False, False),
    # a slash before the end anchors at the root; a leading slash only anchors
    ("/index.html", "index.html", False, True),
    ("/index.html", "blog/index.html", False, False),
    ("blog/*.html", "blog/a.html", False, True),
    ("blog/*.html", "x/blog/a.html", False, False),
    ("blog/*.html", "blog/2024/a.html", False, False),  # * never crosses a slash
    # a trailing slash: directories only
    ("cache/", "cache", True, True),
    ("cache/", "cache", False, False),
    # ** forms
    ("**/logs", "logs", True, True),
    ("**/logs", "a/b/logs", True, True),
    ("logs/**", "logs/a/b.txt", False, True),
    ("logs/**", "logs", True, False),
    ("a/**/b.txt", "a/b.txt", False, True),
    ("a/**/b.txt", "a/x/y/b.txt", False, True),
    ("a**b", "axxb", False, True),  # not alone between slashes: an ordinary *
    ("a**b", "ax/xb", False, False),
    # ? and classes
    ("file?.txt", "file1.txt", False, True),
    ("file?.txt", "file10.txt", False, False),
    ("[abc].css", "b.css", False, True),
    ("[!abc].css", "b.css", False, False),
    ("[!abc].css", "d.css", False, True),
    ("v[0-9].js", "v7.js", False, True),
    ("v[0-9].js", "vx.js", False, False),
    ("[a", "[a", False, True),  # an unclosed class is literal
    # negation: the last matching line wins
    ("*.html\n!keep.html", "keep.html", False, False),
    ("*.html\n!keep.html", "drop.html", False, True),
    ("!keep.html\n*.html", "keep.html", False, True),
    # comments, blanks, escapes, trailing spaces
    ("# note\n\n*.bak", "# note", False, False),
    ("\\#hash.txt", "#hash.txt", False, True),
    ("\\!bang.txt", "!bang.txt", False, True),
    ("trailing.txt   ", "trailing.txt", False, True),
    ("space\\ ", "space ", False, True),
    ("*.txt\r", "crlf.txt", False, True),
    ("a\\*b", "a*b", False, True),
    ("a\\*b", "axb", False, False),
])
def test_pattern_matches_as_gitignore_does(rules: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert IgnoreRules(rules).ignored(path, is_dir) is ignored


def test_no_rules_ignore_nothing() -> None:
    assert not IgnoreRules("# only a comment\n\n")
    assert IgnoreRules("").ignored("anything.html", False) is False
