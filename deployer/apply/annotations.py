"""The annotations a version carries (``workers/message``, ``workers/tag``; reference §7.5): given
with ``--message``/``--tag``, else the subject and short id of the git commit the manifest's work
tree is at, read from ``.git`` directly (loose or packed objects), without running git."""
from __future__ import annotations

import zlib
from bisect import bisect_left
from pathlib import Path

from deployer.errors import DeployerError
from deployer.state.project import git_directories

MAX_MESSAGE_BYTES = 1000
MAX_TAG_BYTES = 100
SHORT_ID = 7  # as git and GitHub abbreviate a commit id by default

_COMMIT, _OFS_DELTA, _REF_DELTA = 1, 6, 7
_TYPES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}


def version_annotations(manifest_path: Path, message: str | None, tag: str | None) -> dict[str, str]:
    """``{"workers/message": ..., "workers/tag": ...}``: the given texts, else the current
    commit's subject and short id (none outside a git work tree). The message is cut to 1,000
    bytes on a UTF-8 character boundary; a tag over 100 bytes is a DeployerError (a cut tag would
    name something else)."""
    if tag is not None and len(tag.encode()) > MAX_TAG_BYTES:
        raise DeployerError(f"--tag is {len(tag.encode())} bytes; Cloudflare takes at most {MAX_TAG_BYTES} "
                            "(workers/tag): give a shorter tag")
    if message is None or tag is None:
        commit = head_commit(manifest_path.absolute().parent)
        if commit is not None:
            message = commit[1] if message is None else message
            tag = commit[0][:SHORT_ID] if tag is None else tag
    found = {"workers/message": cut_utf8(message or "", MAX_MESSAGE_BYTES), "workers/tag": tag or ""}
    return {key: value for key, value in found.items() if value}


def cut_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    return text.encode()[:limit].decode("utf-8", errors="ignore")


def head_commit(directory: Path) -> tuple[str, str] | None:
    """(id, subject) of the commit checked out in the git work tree around ``directory``; None
    outside one, on an unborn branch, or when the repository cannot be read (no annotation is
    better than a failed deploy)."""
    found = git_directories(directory)
    if found is None:
        return None
    git_dir, common = found
    try:
        commit_id = _resolve_head(git_dir, common)
        if commit_id is None:
            return None
        kind, body = _read_object(common / "objects", commit_id)
    except (OSError, ValueError, zlib.error):
        return None
    if kind != b"commit":
        return None
    return commit_id, _subject(body)


def _subject(commit: bytes) -> str:
    # git's subject: the message's first paragraph, its lines joined by spaces.
    _, _, message = commit.partition(b"\n\n")
    paragraph = message.decode("utf-8", errors="replace").strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def _resolve_head(git_dir: Path, common: Path) -> str | None:
    head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    for _ in range(5):  # a symbolic ref may point at another
        if not head.startswith("ref:"):
            return head if _is_object_id(head) else None
        ref = head[len("ref:"):].strip()
        loose = common / ref
        if loose.is_file():
            head = loose.read_text(encoding="utf-8").strip()
            continue
        return _packed_ref(common / "packed-refs", ref)
    return None


def _packed_ref(packed: Path, ref: str) -> str | None:
    try:
        lines = packed.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None  # an unborn branch: no commit yet
    for line in lines:
        object_id, _, name = line.partition(" ")
        if name == ref and _is_object_id(object_id):
            return object_id
    return None


def _is_object_id(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)


def _read_object(objects: Path, object_id: str) -> tuple[bytes, bytes]:
    """(type, content) of an object, loose or in a pack. ValueError when it is in neither."""
    loose = objects / object_id[:2] / object_id[2:]
    if loose.is_file():
        raw = zlib.decompress(loose.read_bytes())
        header, _, content = raw.partition(b"\0")
        return header.split(b" ")[0], content
    wanted = bytes.fromhex(object_id)
    for index in sorted((objects / "pack").glob("*.idx")):
        offset = _pack_offset(index.read_bytes(), wanted)
        if offset is not None:
            return _pack_object(index.with_suffix(".pack").read_bytes(), offset, objects)
    raise ValueError(f"object {object_id} not found")


def _pack_offset(index: bytes, wanted: bytes) -> int | None:
    """Where ``wanted`` starts in the pack, from a version 2 pack index."""
    if index[:8] != b"\xfftOc\x00\x00\x00\x02":
        return None
    count = int.from_bytes(index[8 + 255 * 4:8 + 256 * 4], "big")
    names_at = 8 + 256 * 4
    names = [index[names_at + 20 * i:names_at + 20 * (i + 1)] for i in range(count)]
    position = bisect_left(names, wanted)
    if position == count or names[position] != wanted:
        return None
    offsets_at = names_at + 24 * count  # after the names and their CRC32s
    offset = int.from_bytes(index[offsets_at + 4 * position:offsets_at + 4 * (position + 1)], "big")
    if offset & 0x80000000:  # a pack over 2 GiB keeps large offsets in a table of their own
        large_at = offsets_at + 4 * count + 8 * (offset & 0x7FFFFFFF)
        offset = int.from_bytes(index[large_at:large_at + 8], "big")
    return offset


def _pack_object(pack: bytes, offset: int, objects: Path) -> tuple[bytes, bytes]:
    byte = pack[offset]
    kind, at = (byte >> 4) & 7, offset + 1
    while byte & 0x80:  # the size continues; zlib tells where the data ends
        byte, at = pack[at], at + 1
    if kind == _OFS_DELTA:
        byte, at = pack[at], at + 1
        distance = byte & 0x7F
        while byte & 0x80:
            byte, at = pack[at], at + 1
            distance = ((distance + 1) << 7) | (byte & 0x7F)
        base_kind, base = _pack_object(pack, offset - distance, objects)
        return base_kind, _apply_delta(base, zlib.decompressobj().decompress(pack[at:]))
    if kind == _REF_DELTA:
        base_kind, base = _read_object(objects, pack[at:at + 20].hex())
        return base_kind, _apply_delta(base, zlib.decompressobj().decompress(pack[at + 20:]))
    if kind not in _TYPES:
        raise ValueError(f"unknown pack object type {kind}")
    return _TYPES[kind], zlib.decompressobj().decompress(pack[at:])


def _apply_delta(base: bytes, delta: bytes) -> bytes:
    """Git's delta format: the base and result sizes, then copy-from-base and insert orders."""
    at = 0
    for _ in range(2):  # skip both sizes (varints)
        while delta[at] & 0x80:
            at += 1
        at += 1
    out = bytearray()
    while at < len(delta):
        order, at = delta[at], at + 1
        if order & 0x80:
            start = size = 0
            for bit in range(4):
                if order & (1 << bit):
                    start |= delta[at] << (8 * bit)
                    at += 1
            for bit in range(3):
                if order & (0x10 << bit):
                    size |= delta[at] << (8 * bit)
                    at += 1
            out += base[start:start + (size or 0x10000)]
        elif order:
            out += delta[at:at + order]
            at += order
        else:
            raise ValueError("a delta order of 0 is reserved")
    return bytes(out)
