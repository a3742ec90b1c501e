"""Named pretrained assets, fetched on demand into a verified cache.

A file of a bundle (`asset_registry.py`) is fetched once into the cache, under
the same path it has on the host, so a mirror (`--mirror URL`: the same paths
on another host) fills the same cache:

    $SPEECHPROMPT_CACHE, else $XDG_CACHE_HOME/speechprompt, else ~/.cache/speechprompt

- Downloads go to `PATH.part` and resume from there (HTTP Range) after a cut
  connection, within one run and across runs. A finished file is verified
  and renamed into place, so a file at its cache path is always whole.
- sha256: a hash the user gives wins, then one pinned in the registry, then
  the one recorded in the lock file `assets.lock` (sha256sum's format, in the
  cache) when the file first entered the cache. A mismatch deletes the
  download. A file placed in the cache by hand is verified the same way.
- `.tgz` files are unpacked, member by member checked (no absolute paths, no
  `..`, no links leading out, no device files), into a directory named after
  the archive; the archive is then removed.
- Every failure is one line (`BadInput`): the URL, the reason, and the cache
  path where the file can be placed by hand.

Only the standard library speaks HTTP (urllib), so nothing new is installed.
"""
from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import posixpath
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Iterator

from tqdm import tqdm

from .asset_bundle import Bundle
from .io import BadInput, file_hash, log

LOCK_FILE = "assets.lock"
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".zip")
CHUNK = 1 << 20
RETRIES = 3  # fresh attempts after a connection that was cut mid-file (each resumes)
TIMEOUT = 60  # seconds without a byte before a connection counts as cut


# --------------------------------------------------------------------- cache
def cache_dir(environ=os.environ) -> str:
    if environ.get("SPEECHPROMPT_CACHE"):
        return environ["SPEECHPROMPT_CACHE"]
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "speechprompt")


def is_archive(url: str) -> bool:
    return url.endswith(ARCHIVE_SUFFIXES)


def unpacked_dir(path: str) -> str:
    """Where an archive is unpacked: its own path without the suffix (`x/hubert100_lm.tgz` -> `x/hubert100_lm`)."""
    return next(path[: -len(s)] for s in ARCHIVE_SUFFIXES if path.endswith(s))


class Lock:
    """The sha256 recorded for each url path, in sha256sum's format: `HASH  PATH`."""

    def __init__(self, root: str):
        self.path = os.path.join(root, LOCK_FILE)
        self.hashes: dict[str, str] = {}
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    digest, _, url = line.rstrip("\n").partition("  ")
                    if not re.fullmatch(r"[0-9a-f]{64}", digest) or not url:
                        raise BadInput("expected 'SHA256  PATH' (delete the line to record the file again)",
                                       f"{self.path}:{number}")
                    self.hashes[url] = digest

    def record(self, url: str, digest: str) -> None:
        self.hashes[url] = digest
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=f".{LOCK_FILE}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(f"{h}  {u}\n" for u, h in sorted(self.hashes.items()))
        os.replace(tmp, self.path)


# ------------------------------------------------------------------ download
class Cut(Exception):
    """The connection ended before the whole file came (it can resume)."""


def _open(url: str, start: int):
    request = urllib.request.Request(url, headers={"User-Agent": "speechprompt-assets"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=TIMEOUT)


def _receive(url: str, part: str) -> None:
    """One attempt: append the rest of `url` to `part` (Range from its size), or start it over."""
    start = os.path.getsize(part) if os.path.exists(part) else 0
    try:
        response = _open(url, start)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # the part already holds every byte
            return
        raise
    with response:
        if start and response.status != 206:  # the server ignores Range: start over
            start = 0
        elif start and not (response.headers.get("Content-Range") or "").startswith(f"bytes {start}-"):
            raise Cut(f"the server resumed at the wrong byte ({response.headers.get('Content-Range')})")
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        os.makedirs(os.path.dirname(part), exist_ok=True)
        received = start
        with open(part, "ab" if start else "wb") as out, \
                tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=posixpath.basename(url), file=sys.stderr, disable=None, leave=False) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError) as error:
                raise Cut(_reason(error)) from None
        if total is not None and received < total:
            raise Cut(f"the connection closed after {received} of {total} bytes")


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        error = error.reason if isinstance(error.reason, BaseException) else error
        if isinstance(error, str):
            return error
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def download(url: str, part: str, where_by_hand: str) -> None:
    """Fetch `url` into `part`, resuming; a cut connection is retried, anything else fails at once."""
    for attempt in range(RETRIES + 1):
        before = os.path.getsize(part) if os.path.exists(part) else 0
        try:
            _receive(url, part)
            return
        except Cut as error:
            got = os.path.getsize(part) if os.path.exists(part) else 0
            if attempt < RETRIES and got > before:
                log(f"{url}: {error}; resuming at byte {got}")
                continue
            reason = str(error)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = _reason(error)
        kept = os.path.getsize(part) if os.path.exists(part) else 0
        resume = f"{kept} bytes kept in {part}: run again to resume, or " if kept else ""
        raise BadInput(f"cannot download ({reason}); {resume}place the file by hand at {where_by_hand} "
                       "to skip the download", url)


# --------------------------------------------------------------- unpacking
def check_member(member: tarfile.TarInfo) -> str | None:
    """Why `member` may not be unpacked, or None."""
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "a '..' component"
    if member.issym() or member.islnk():
        target = member.linkname
        if target.startswith(("/", "\\")):
            return f"a link to the absolute path {target!r}"
        base = posixpath.dirname(name) if member.issym() else ""  # hard links are relative to the root
        resolved = posixpath.normpath(posixpath.join(base, target))
        if resolved == ".." or resolved.startswith("../"):
            return f"a link to {target!r}, outside the archive"
    elif not (member.isfile() or member.isdir()):
        return "a device or pipe"
    return None


def unpack(archive: str, target: str, where: str) -> None:
    """Unpack a .tgz into `target` (made whole, then renamed into place) after checking every member."""
    parent = os.path.dirname(target)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(target)}.", suffix=".unpack")
    try:
        if archive.endswith((".zip", ".zip.part")):
            unpack_zip(archive, tmp, where)
            os.replace(tmp, target)
            return
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    why = check_member(member)
                    if why:
                        raise BadInput(f"refused: member {member.name!r} is {why}; nothing unpacked", where)
                # tarfile's own "data" filter (Python >= 3.11.4) enforces the same rules a second time
                safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **safe)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise BadInput(f"cannot unpack: {_reason(error)}", where) from None
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


# -------------------------------------------------------------------- fetch
def unpack_zip(archive: str, into: str, where: str) -> None:
    """A .zip (TWIST's LMs) into `into`, by the same rules as a .tgz: relative paths without `..`, files and
    directories only (a member whose Unix mode says link, device or pipe is refused)."""
    import stat
    import zipfile

    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():
                name, mode = member.filename, member.external_attr >> 16
                why = ("an absolute path" if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) else
                       "a '..' component" if ".." in re.split(r"[/\\]", name) else
                       "a link, device or pipe" if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) else None)
                if why:
                    raise BadInput(f"refused: member {name!r} is {why}; nothing unpacked", where)
            zipped.extractall(into)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise BadInput(f"cannot unpack: {_reason(error)}", where) from None


class Store:
    """The cache: fetches a bundle's files, verified, and returns their local paths."""

    def __init__(self, root: str, mirror: str | None = None):
        self.root = os.path.abspath(os.path.expanduser(root))
        self.mirror = mirror

    def url(self, bundle: Bundle, path: str) -> str:
        base = self.mirror or bundle.hosts.get(path, bundle.base_url)
        return urllib.parse.urljoin(base if base.endswith("/") else base + "/", path)

    def local(self, path: str) -> str:
        return os.path.join(self.root, *path.split("/"))

    def cached(self, bundle: Bundle, key: str) -> str:
        """The local path of files[key] once fetched (inside the unpacked archive for a member)."""
        asset = bundle.files[key]
        path = self.local(asset.url)
        if asset.member is None:
            return path
        return os.path.join(unpacked_dir(path), *asset.member.split("/"))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One fetch at a time per cache (two makes fetching one bundle share it, not a .part)."""
        os.makedirs(self.root, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def fetch(self, bundle: Bundle, keys: list[str] | None = None, user_sha256: dict[str, str] | None = None
              ) -> dict[str, str]:
        """Local paths of `keys` (default: all files), fetching what the cache lacks."""
        keys = list(bundle.files) if keys is None else keys
        unknown = [key for key in keys if key not in bundle.files]
        if unknown:
            raise BadInput(f"{bundle.name} has no file {unknown[0]!r} (its files: {', '.join(bundle.files)})")
        wanted: dict[str, str] = {}  # url path -> the hash the user gave
        for key, digest in (user_sha256 or {}).items():
            if key not in bundle.files:
                raise BadInput(f"--sha256 {key}=...: {bundle.name} has no file {key!r} "
                               f"(its files: {', '.join(bundle.files)})")
            wanted[bundle.files[key].url] = digest.lower()
        with self.locked():
            lock = Lock(self.root)
            for url in bundle.downloads(keys):
                self._ensure(bundle, url, lock, wanted.get(url))
        return {key: self.find(bundle, key) for key in keys}

    def find(self, bundle: Bundle, key: str) -> str:
        """The local path of files[key], already fetched; one line if the cache lacks it."""
        path = self.cached(bundle, key)
        if os.path.isfile(path):
            return path
        # Only hubert100_lm's layout was checked: elsewhere take the one file of that name in the archive.
        asset = bundle.files[key]
        root = unpacked_dir(self.local(asset.url))
        name = posixpath.basename(asset.member or "")
        found = [os.path.join(d, name) for d, _, files in os.walk(root) if name in files]
        if len(found) == 1:
            return found[0]
        raise BadInput(f"the unpacked archive {root} has {len(found) or 'no'} file(s) {name!r} "
                       f"(expected {asset.member!r})", self.url(bundle, asset.url))

    def _ensure(self, bundle: Bundle, url_path: str, lock: Lock, user_hash: str | None) -> None:
        path, url = self.local(url_path), self.url(bundle, url_path)
        done = unpacked_dir(path) if is_archive(url_path) else path
        expected, source = next(((h, s) for h, s in [(user_hash, "given"), (bundle.sha256.get(url_path), "pinned"),
                                                      (lock.hashes.get(url_path), f"recorded in {lock.path}")] if h),
                                (None, None))
        recorded = lock.hashes.get(url_path)
        if user_hash and recorded and user_hash != recorded and os.path.exists(done):
            raise BadInput(f"sha256 mismatch: the cached file has {recorded} (recorded in {lock.path}), "
                           f"given {user_hash}", path)
        if (recorded or is_archive(url_path)) and os.path.exists(done):
            return  # verified when it entered the cache (an archive unpacked by hand is taken as it is)
        if os.path.isfile(path):  # placed by hand: verified like a download
            source_file, by_hand = path, True
            log(f"{url_path}: found in the cache, verifying")
        else:
            source_file, by_hand = path + ".part", False
            log(f"fetching {url}")
            download(url, source_file, path)
        digest = file_hash(source_file)
        if expected and digest != expected:
            os.unlink(source_file)
            what = "the file placed by hand" if by_hand else "the download"
            raise BadInput(f"sha256 mismatch: {what} has {digest}, {source} {expected}; deleted it", url)
        if is_archive(url_path):
            try:
                unpack(source_file, done, url)
            except BadInput:
                os.unlink(source_file)
                raise
            os.unlink(source_file)  # the unpacked directory is what the bundle uses
        elif not by_hand:
            os.replace(source_file, path)
        if lock.hashes.get(url_path) != digest:  # first entry, or a hash given or pinned since
            lock.record(url_path, digest)
            log(f"{url_path}: sha256 {digest} recorded in {lock.path}")

    def make_settings(self, bundle: Bundle, paths: dict[str, str]) -> dict[str, str]:
        """The bundle's Make settings with its fetched paths filled in (settings naming unfetched files left out)."""
        settings = {}
        for var, value in bundle.make.items():
            refs = re.findall(r"{(\w+)}", value)
            if all(ref in paths for ref in refs):
                settings[var] = re.sub(r"{(\w+)}", lambda m: paths[m.group(1)], value)
        return settings
