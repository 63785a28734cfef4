"""Asset files: the hash Cloudflare expects, the walk (confined, ignored files, limits, config
files) and the hash cache that must never hide a change."""
from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import blake3
import pytest

from deployer.kinds import assets as kind
from deployer.manifest import asset_files
from deployer.manifest.asset_files import hash_assets, scan_assets

OLD = time.time() - 3600  # a file last changed an hour ago is trusted from the cache


def _expected(data: bytes, extension: str) -> str:
    return blake3.blake3(base64.b64encode(data) + extension.encode()).hexdigest()[:32]


@pytest.mark.parametrize(("name", "extension"), [
    ("index.html", "html"), ("archive.tar.gz", "gz"), (".htaccess", ""), ("README", ""), ("file.", ""),
    ("..hidden", "hidden"),
])
def test_the_hash_is_blake3_of_the_base64_and_the_extension(tmp_path: Path, name: str, extension: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"<h1>hello</h1>\n")
    assert kind.file_hash(path, "/" + name) == (_expected(b"<h1>hello</h1>\n", extension), 15)
    assert kind.bytes_hash(b"<h1>hello</h1>\n", "/" + name) == _expected(b"<h1>hello</h1>\n", extension)


def test_a_large_file_hashes_as_one_piece_although_it_is_streamed(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024 + 7)  # several chunks, the last not a multiple of 3
    (tmp_path / "big.bin").write_bytes(data)
    assert kind.file_hash(tmp_path / "big.bin", "/big.bin") == (_expected(data, "bin"), len(data))


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_walk_lists_files_by_url_path_and_skips_what_is_ignored(tmp_path: Path) -> None:
    public = _tree(tmp_path / "public", {"index.html": "i", "css/a.css": "a", "a.map": "m", "tmp/x": "x",
                                         ".assetsignore": "*.map\ntmp/\n", "_headers": "/*\n  X-A: b\n",
                                         "_redirects": "/old /new 301\n", "css/_headers": "kept"})
    scan = scan_assets(public, tmp_path, "public")
    assert sorted(f.path for f in scan.files) == ["css/_headers", "css/a.css", "index.html"]
    # At the root they are Cloudflare's config, sent as text, not served (as wrangler does).
    assert scan.config_files == {"_headers": "/*\n  X-A: b\n", "_redirects": "/old /new 301\n"}
    assert scan.problems == [] and scan.warnings == []


def test_a_symlink_out_of_the_manifests_directory_is_refused_and_one_inside_is_followed(tmp_path: Path) -> None:
    base = tmp_path / "project"
    public = _tree(base / "public", {"index.html": "i"})
    (base / "shared.css").write_text("s")
    (tmp_path / "secret").write_text("k")
    (public / "shared.css").symlink_to(base / "shared.css")
    (public / "leak.txt").symlink_to(tmp_path / "secret")
    (public / "loop").symlink_to(public)
    scan = scan_assets(public, base, "public")
    assert sorted(f.path for f in scan.files) == ["index.html", "shared.css"]
    assert scan.problems == ["public/leak.txt is a symlink leading outside the manifest's directory; copy the file "
                             "in, or list it in .assetsignore"]


def test_deployers_own_folder_is_never_an_asset(tmp_path: Path) -> None:
    _tree(tmp_path, {"index.html": "i", ".deployer/state.json": "{}"})
    assert [f.path for f in scan_assets(tmp_path, tmp_path, ".").files] == ["index.html"]


def test_cloudflares_limits_refuse_a_big_file_and_warn_past_the_free_plans_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = _tree(tmp_path / "public", {"a.html": "a", "b.html": "b", "big.bin": "0123456789"})
    monkeypatch.setattr(kind, "MAX_FILE_BYTES", 9)
    monkeypatch.setattr(kind, "FREE_PLAN_FILES", 1)
    scan = scan_assets(public, tmp_path, "public")
    assert scan.problems == ["public/big.bin is 10 bytes; Cloudflare serves asset files of at most 25 MiB (9 bytes)"]
    assert scan.warnings == ["public holds 2 files: more than the 1 assets a Worker on the Free plan may have "
                             "(paid plans: 100,000)"]
    monkeypatch.setattr(kind, "MAX_FILES", 1)
    assert scan_assets(public, tmp_path, "public").problems[-1].startswith("public holds 2 files; a Worker serves "
                                                                          "at most 1 assets")


class _Counting:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, path: Path, name: str) -> tuple[str, int]:
        self.calls.append(name)
        return kind.file_hash(path, name)


def _hashes(public: Path, base: Path, hasher: _Counting) -> dict[str, str]:
    return {f.path: f.hash for f in hash_assets(scan_assets(public, base, "public"), public, base, hasher=hasher)}


def test_an_unchanged_old_file_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = _tree(tmp_path / "public", {"a.html": "a", "b.html": "b"})
    # The files' ctime is now (a test cannot age it): trust what changed before the walk at all.
    monkeypatch.setattr(asset_files, "_RACY_NS", 0)
    time.sleep(0.01)
    first, second = _Counting(), _Counting()
    assert _hashes(public, tmp_path, first) == _hashes(public, tmp_path, second)
    assert sorted(first.calls) == ["a.html", "b.html"] and second.calls == []


def test_a_file_changed_just_before_it_was_hashed_is_hashed_again(tmp_path: Path) -> None:
    public = _tree(tmp_path / "public", {"a.html": "a"})  # written now: racily clean
    _hashes(public, tmp_path, _Counting())
    again = _Counting()
    _hashes(public, tmp_path, again)
    assert again.calls == ["a.html"]


def test_a_change_that_keeps_size_and_mtime_is_still_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = _tree(tmp_path / "public", {"a.html": "aaaa"})
    os.utime(public / "a.html", (OLD, OLD))
    monkeypatch.setattr(asset_files, "_RACY_NS", 0)  # the cache is trusted: only the ctime tells
    time.sleep(0.01)
    before = _hashes(public, tmp_path, _Counting())
    time.sleep(0.01)
    (public / "a.html").write_text("bbbb")
    os.utime(public / "a.html", (OLD, OLD))  # mtime put back; the ctime cannot be
    after = _hashes(public, tmp_path, _Counting())
    assert before["/a.html"] != after["/a.html"] == _expected(b"bbbb", "html")


def test_a_damaged_cache_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = _tree(tmp_path / "public", {"a.html": "a"})
    monkeypatch.setattr(asset_files, "_RACY_NS", 0)
    expected = _hashes(public, tmp_path, _Counting())
    for cache in (tmp_path / ".deployer" / "cache").iterdir():
        cache.write_text('{"version": 1, "files": {"a.html": [1, 2, "x"]}}')
    counting = _Counting()
    assert _hashes(public, tmp_path, counting) == expected and counting.calls == ["a.html"]


def test_the_manifest_digest_covers_paths_hashes_and_sizes(tmp_path: Path) -> None:
    public = _tree(tmp_path / "public", {"a.html": "a"})
    files = hash_assets(scan_assets(public, tmp_path, "public"), public, tmp_path)
    assert kind.manifest_document(files) == (b'{"/a.html":{"hash":"' + _expected(b"a", "html").encode()
                                             + b'","size":1}}')
    made = kind.make_assets(public, files, {"html_handling": "none", "directory": "public"}, {"_headers": "h"})
    assert made.config.text == '{"_headers":"h","html_handling":"none"}'
