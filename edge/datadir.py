"""The device's data directory is private to the user that runs festgate: 0700, files 0600.

The replica holds the festival's hash key beside keyed hashes of every code and tag UID, and
the credentials hold the device token: a reader of those can test guesses offline and speak
to central as this device. So every file festgate writes here is created owner-only (mode
given to `mkdir`/`open`, no window before a later chmod; SQLite gives its -wal and -shm the
database file's mode), and every open refuses a directory or file that others can reach or
that another user owns, with the command that fixes it. An existing install is not fixed
silently: permissions that were open may already have been read, and the site tech should
know that (and tell ops, who can revoke the device).
"""

from __future__ import annotations

import os
import pwd
import shlex
from pathlib import Path

from config.errors import ConfigError

DIR_MODE = 0o700
FILE_MODE = 0o600
CREDENTIALS = "credentials.json"  # the device token (`edge.sync_link`)
# SQLite's companions of a database file: WAL, shared memory, rollback journal.
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


class DataDirNotPrivate(ConfigError):
    """The data directory, or a file in it, is open to other users or owned by another user."""


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry (a container, a deleted user)
        return str(uid)


def secret_files(data_dir: Path, db_name: str) -> list[Path]:
    """The files here that hold the hash key, the hashes, the facts or the token."""
    return [data_dir / f"{db_name}{s}" for s in SQLITE_SUFFIXES] + [data_dir / CREDENTIALS]


def _quoted(path: Path) -> str:
    return shlex.quote(os.path.abspath(path))


def check_private(data_dir: Path, db_name: str, *, owner: int | None = None) -> None:
    """Raise DataDirNotPrivate, naming what is wrong and the command that fixes it, unless
    `data_dir` and its secret files that exist belong to this user (or `owner`, a uid: root
    checking the service user's directory) and to no one else."""
    me = os.geteuid() if owner is None else owner
    foreign: dict[int, list[str]] = {}
    shown: list[str] = []
    to_chmod: dict[str, None] = {}  # an ordered set of chmod commands
    for path in [data_dir, *secret_files(data_dir, db_name)]:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        label = "directory" if path == data_dir else path.name
        if st.st_uid != me:
            foreign.setdefault(st.st_uid, []).append(label)
        if st.st_mode & 0o077:
            shown.append(f"{label} {st.st_mode & 0o7777:04o}")
            if path == data_dir:
                to_chmod[f"chmod 700 {_quoted(path)}"] = None
            elif path.name.startswith(db_name):
                # A glob: SQLite removes -wal and -shm when its last connection closes, and
                # chmod fails on a name that is gone by the time the tech runs it.
                to_chmod[f"chmod 600 {_quoted(data_dir / db_name)}*"] = None
            else:
                to_chmod[f"chmod 600 {_quoted(path)}"] = None
    if not foreign and not shown:
        return
    wrong = [
        f"owned by {_user(uid)} ({', '.join(labels)}), not by {_user(me)}"
        for uid, labels in foreign.items()
    ]
    if shown:
        wrong.append(f"open to other users ({', '.join(shown)})")
    advice = _advice(data_dir, me, foreign, list(to_chmod))
    raise DataDirNotPrivate(str(data_dir), [f"{'; '.join(wrong)}: {advice}"])


def _advice(data_dir: Path, me: int, foreign: dict[int, list[str]], chmods: list[str]) -> str:
    """The fixing command; for files of another user, also whom to run festgate as."""
    owner = _user(next(iter(foreign))) if foreign else ""
    commands = list(chmods)
    if foreign and me != 0:  # someone else's files: take them over (root can)
        commands.insert(0, f"sudo chown -R {_user(me)} {_quoted(data_dir)}")
    advice = [f"fix with `{' && '.join(commands)}`"] if commands else []
    if not foreign:
        return advice[0]
    if me == 0:
        # Root running the CLI on the daemon's data dir: taking it over would lock the daemon
        # out, so the advice is to be that user (the chmods, if any, are needed as well).
        return " and ".join([*advice, f"run festgate as {owner} (`sudo -u {owner} festgate …`)"])
    return ", or ".join([*advice, f"run festgate as {owner}"])


def prepare(data_dir: Path, db_name: str) -> Path:
    """Create the data dir (0700) and its database file (0600) if missing, after checking
    what exists; returns the database's path. Raises DataDirNotPrivate."""
    # The mode applies only if the directory is new; an existing one is checked instead.
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    check_private(data_dir, db_name)
    db = data_dir / db_name
    # An empty file is an empty SQLite database; created here so its mode is 0600 from the
    # start (SQLite would create it 0644), and SQLite copies that mode to -wal and -shm.
    os.close(os.open(db, os.O_RDWR | os.O_CREAT, FILE_MODE))
    return db


def write_private(path: Path, text: str) -> None:
    """Write a text file readable by its owner only (created 0600; an old file is set 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # O_CREAT's mode does not apply to a file that already existed
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def service_user(data_dir: Path, user: str | None) -> str | None:
    """Whom root should act as on `data_dir`: `user` when given, else the data dir's owner when
    that is not root (deploy/install-device makes it the service user's); None otherwise."""
    if user is not None or os.geteuid() != 0:
        return user
    try:
        owner = data_dir.stat().st_uid
    except FileNotFoundError:
        return None
    return _user(owner) if owner != 0 else None


def become(user: str, data_dir: Path) -> None:
    """Run the rest of this process as `user` (its groups, gid, uid), so that every file it
    creates is that user's: root enrolling for the service user leaves nothing owned by root.
    A missing `data_dir` is made first (0700, the user's), where its parent is root's.
    Raises ConfigError for an unknown user or when not root and not already that user."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError("--user", [f"no user {user!r} on this machine"]) from None
    if os.geteuid() == entry.pw_uid:
        return
    if os.geteuid() != 0:
        raise ConfigError("--user", [f"only root can act as {user}: run with sudo"])
    if not data_dir.exists():
        data_dir.mkdir(mode=DIR_MODE, parents=True)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    os.initgroups(entry.pw_name, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ["HOME"] = entry.pw_dir


def act_as(data_dir: Path, user: str | None) -> None:
    """`festgate init` run by root: become the service user (`service_user`) if there is one."""
    chosen = service_user(data_dir, user)
    if chosen is not None:
        become(chosen, data_dir)
