"""The run directory: identity, resume, refusal of a different config, one writer at a time.

Every flow (sweep, one-shot search, analysis, training of one architecture) goes through
:class:`RunDir`. A directory belongs to one configuration: its identity is the set of
``(section, key) -> value`` pairs of the resolved config minus the keys that do not change
results for that flow (display, output location, and e.g. the budget range of a sweep, whose
records are keyed by (budget, repeat) anyway). Rerunning with the same identity resumes;
a different identity is refused before anything is written.

Directories written by older versions are read back through the current schema, so keys added
since then take their defaults (what the older version did) and an upgrade does not orphan them.
"""

from __future__ import annotations

import configparser
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Tuple

from tfnas.config import SECTIONS, Config, ConfigError, config_to_ini, ini_value, load_config
from tfnas.io import RUN_CONFIG_FILE, atomic_write_text
from tfnas.run.store import STATE_DIR, ArtifactStore

CONFIG_FILE = RUN_CONFIG_FILE
LOCK_FILE = ".lock"

logger = logging.getLogger(__name__)

#: Keys that never change results: where the run goes, whether bars are shown and events written.
DISPLAY_KEYS: FrozenSet[Tuple[str, str]] = frozenset({("run", "progress"), ("run", "out_dir"),
                                                      ("run", "tensorboard"), ("run", "executor"),
                                                      ("run", "workers"), ("run", "ray_address"),
                                                      ("run", "worker_threads")})


class RunDirError(ConfigError):
    """A run directory that cannot be used for this run (other config, locked, not a folder)."""

    exit_code = 2  # the command line's exit status: bad input


class RunDirAccessError(RunDirError):
    """A run directory that cannot be created or written (permissions, a full disk): the command
    line exits 4, as for any other file or folder it cannot read or write."""

    exit_code = 4


def config_identity(ini: str, ignore: Iterable[Tuple[str, str]] = (),
                    ignore_sections: Iterable[str] = ()) -> Dict[str, Dict[str, str]]:
    """``{section: {key: value}}`` of a resolved config, minus ``ignore`` pairs and sections."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(ini)
    skip, skip_sections = set(ignore) | DISPLAY_KEYS, set(ignore_sections)
    return {s: {k: v for k, v in parser.items(s) if (s, k) not in skip}
            for s in parser.sections() if s not in skip_sections}


def config_id(identity: Dict[str, Dict[str, str]]) -> str:
    """A short stable digest of a config identity (:func:`config_identity`), stored in each record.

    Only values that differ from the defaults enter the digest, so a key added by a later tfnas
    version (at its default, i.e. what the older version did) leaves the id of old records valid.
    """
    defaults = config_identity(config_to_ini(Config()))
    changed = {s: {k: v for k, v in items.items() if defaults.get(s, {}).get(k) != v} for s, items in identity.items()}
    text = json.dumps({s: items for s, items in changed.items() if items}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _missing_parents(path: str) -> List[str]:
    """The folders above ``path`` that do not exist yet, innermost first."""
    missing = []
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent) and parent != os.path.dirname(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    return missing


def _differences(there: Dict[str, Dict[str, str]], here: Dict[str, Dict[str, str]], show: int = 3) -> str:
    """The keys two config identities differ in, as ``[section] key = <there> there, <here> now``
    (the first ``show`` of them, then how many more); empty when they are equal."""
    lines = []
    for section in sorted(set(there) | set(here)):
        old, new = there.get(section, {}), here.get(section, {})
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                shown = [repr(ini_value(side[key])) if key in side else "(unset)" for side in (old, new)]
                lines.append(f"[{section}] {key} = {shown[0]} there, {shown[1]} now")
    more = f" and {len(lines) - show} more" if len(lines) > show else ""
    return "; ".join(lines[:show]) + more


def _foreign_files(folder: str) -> bool:
    """Whether ``folder`` holds anything but a lock file and temporary files (False when missing)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return any(name != LOCK_FILE and not name.startswith(".tmp-") for name in names)


def unused_entry(folder: str, name: str, derived: Iterable[str] = ()) -> bool:
    """Whether ``name`` in a run directory holds no result (the config, the lock, a temp file, an empty
    ``search_state/``, a file in ``derived``: written from the config alone)."""
    if name in (CONFIG_FILE, LOCK_FILE) or name in derived or name.startswith(".tmp-"):
        return True
    full = os.path.join(folder, name)
    return name == STATE_DIR and os.path.isdir(full) and not os.listdir(full)


def holds_nothing(folder: str, derived: Iterable[str] = ()) -> bool:
    """Whether the run directory ``folder`` holds no result at all (False where it cannot be read)."""
    try:
        return all(unused_entry(folder, name, derived) for name in os.listdir(folder))
    except OSError:
        return False


def _stamps(folder: str) -> Dict[str, Tuple[int, int]]:
    """Modification time and size of every file and folder under ``folder`` but its ``config.cfg`` and lock file."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            if root == folder and name in (CONFIG_FILE, LOCK_FILE):
                continue
            info = os.lstat(path)
            out[os.path.relpath(path, folder)] = (info.st_mtime_ns, info.st_size)
    return out


def _same_file(fh: Any, path: str) -> bool:
    """Whether the open file ``fh`` is still the file at ``path``."""
    try:
        here, there = os.fstat(fh.fileno()), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


class RunDir:
    """One run directory for one configuration.

    Args:
        cfg: the resolved config (``cfg.out_dir`` is the directory).
        ignore: ``(section, key)`` pairs that may differ between runs sharing the directory.
        ignore_sections: whole sections that may differ (e.g. ``train`` for a search whose
            training runs in its own ``train/`` subdirectory).

    ``open()`` creates the folder, refuses one holding another configuration, takes the
    directory's lock (another process writing the same directory is refused, naming it) and
    writes ``config.cfg`` (not rewritten when identical, so a finished read-only run can still
    be reprinted). A run that fails before it writes anything else into a directory without a
    ``config.cfg`` leaves it as it found it (a new one is removed, with the folders made above it).
    """

    #: run directories opened in this process (the command line's Ctrl-C line says whether one was)
    opened = 0

    def __init__(self, cfg: Config, ignore: Iterable[Tuple[str, str]] = (), ignore_sections: Iterable[str] = (),
                 tolerate: Iterable[Tuple[str, str]] = ()):
        self.cfg = cfg
        self.tolerate = tuple(tolerate)  # keys this run never reads: another value there is no other configuration
        self.path = cfg.out_dir
        self.ignore = tuple(ignore)
        self.ignore_sections = tuple(ignore_sections)
        self.store = ArtifactStore(self.path)
        self._lock_fh = None
        self._made = False  # open() made the directory
        self._made_parents: List[str] = []  # ... and these folders above it
        self._created = False  # ... or found it without a config.cfg: this run's to clean up after a failure
        self._fresh = False  # ... new or empty: a failure before any result leaves nothing to resume
        self._before: set = set()  # what the directory held before open()
        self._previous: Optional[Tuple[str, Dict[str, Tuple[int, int]]]] = None  # config.cfg's text and the files
        self.written_config_id = ""  # the id of config.cfg as check() found it (the same configuration)
        self._written_tolerant_id = ""  # ... without the keys this run never reads
        self._said_threads = False
        #: files a run writes from its config alone (a sweep's pool.txt): no result, as config.cfg is not
        self.derived: set = set()

    def _identity(self, ini: str, tolerant: bool = False) -> Dict[str, Dict[str, str]]:
        """The identity of a config's text; ``tolerant``: without the keys this run never reads."""
        return config_identity(ini, self.ignore + (self.tolerate if tolerant else ()), self.ignore_sections)

    @property
    def config_id(self) -> str:
        """Digest of this run's identity but the keys it never reads: records carry it, so a directory whose
        ``config.cfg`` was deleted still refuses records of another configuration, and takes those of this
        one with another value of such a key."""
        return config_id(self._identity(config_to_ini(self.cfg), tolerant=True))

    @property
    def same_config_ids(self) -> List[str]:
        """Other ids the records of this configuration may carry (:class:`~tfnas.results.RunLog`'s
        ``same_config``): those of ``config.cfg`` as written (:meth:`check`), and this config's id with the keys it
        never reads, as tfnas versions before 2026-12-07 computed it."""
        return [self.written_config_id, self._written_tolerant_id,
                config_id(self._identity(config_to_ini(self.cfg)))]

    def check(self) -> None:
        """Refuses a directory holding another configuration (reads only)."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirError(f"{self.path}: the run directory is a file, not a folder; choose another [run] out_dir")
        state = os.path.join(self.path, STATE_DIR)
        if os.path.lexists(state) and not os.path.isdir(state):  # where searches keep their checkpoints
            raise RunDirError(f"{state}: is a file, not a folder; delete it (or the run directory to restart)")
        config_path = os.path.join(self.path, CONFIG_FILE)
        if not os.path.exists(config_path):
            return
        try:  # through the current schema: keys added since then take their defaults
            previous_cfg = load_config(config_path, check_names=False)
            previous = config_to_ini(previous_cfg)
        except ConfigError as exc:
            raise RunDirError(f"{config_path}: the configuration of the results in this directory cannot be read "
                              f"({exc}); restore the file, or choose another [run] out_dir") from None
        differences = _differences(self._identity(previous, tolerant=True),
                                   self._identity(config_to_ini(self.cfg), tolerant=True))
        if differences:
            raise RunDirError(f"{self.path}: holds results of a different configuration ({differences}; see its "
                              f"config.cfg); choose another [run] out_dir or delete the directory")
        self._say_thread_change(previous_cfg.run)
        if not self.written_config_id:  # its records carry the id of the text as written (values not normalised)
            try:
                with open(config_path, encoding="utf-8") as fh:
                    written = fh.read()
                self.written_config_id = config_id(self._identity(written))
                self._written_tolerant_id = config_id(self._identity(written, tolerant=True))
            except (OSError, ValueError, configparser.Error):
                pass

    def _say_thread_change(self, before: Any) -> None:
        """A resume with another ``[run] worker_threads`` (on a process pool or Ray) is allowed, and said:
        TensorFlow's sums run in another order with another thread count (docs/SCALING.md)."""
        def threads(run: Any) -> int:  # the local executor runs TensorFlow's default, whatever worker_threads says
            return 0 if run.executor == "local" else int(run.worker_threads)

        was, now = threads(before), threads(self.cfg.run)
        if was == now or self._said_threads:
            return
        self._said_threads = True
        logger.warning("%s: its results were computed with [run] worker_threads = %s, this run uses %s: scores "
                       "may differ from theirs in the last digits (a search may then take another path), as "
                       "TensorFlow sums in another order with another thread count (0: TensorFlow's default, as "
                       "the local executor always runs)", self.path, was, now)

    def open(self) -> "RunDir":
        self.check()
        self._made = not os.path.exists(self.path)
        self._made_parents = _missing_parents(self.path)  # e.g. runs/ for runs/x: removed with it when unused
        try:
            self._before = set() if self._made else set(os.listdir(self.path))
        except OSError as exc:
            raise RunDirAccessError(f"{self.path}: cannot read the run directory ({exc.strerror})") from None
        self._created = CONFIG_FILE not in self._before
        self._fresh = not any(name != LOCK_FILE and not name.startswith(".tmp-") for name in self._before)
        if not os.path.exists(os.path.join(self.path, CONFIG_FILE)) and _foreign_files(self.path):
            logger.warning("%s holds files but no %s (no tfnas run wrote it, or its config.cfg was deleted); "
                           "writing this run into it", self.path, CONFIG_FILE)
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:  # part-way, e.g. a name too long further down: the folders made are removed
            self._remove_made_parents()
            raise RunDirAccessError(f"{self.path}: cannot create the run directory ({exc.strerror})") from None
        try:
            self._open_made()
        except BaseException:
            if self._created and self._lock_fh is not None:  # refused by another run's lock: its files, not ours
                self._remove_if_unused()
            self.close()
            raise
        RunDir.opened += 1
        return self

    def _open_made(self) -> None:
        """Locks the directory (made or found) and writes its ``config.cfg``."""
        self._lock()
        self.check()  # again, under the lock: a run of another configuration may have written it meanwhile
        config_path = os.path.join(self.path, CONFIG_FILE)
        if not self._created:  # put back if this run ends before it writes anything (a Ray head that is not there)
            try:
                with open(config_path, encoding="utf-8") as fh:
                    self._previous = (fh.read(), _stamps(self.path))
            except (OSError, ValueError):
                self._previous = None
        try:  # an identical config.cfg is not rewritten (tfnas.io), so a read-only finished run reprints
            atomic_write_text(config_path, self.config_text())
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else exc.strerror  # tfnas.io's strerror names the file
            if not self.written_config_id:
                raise RunDirAccessError(f"{self.path}: cannot write {CONFIG_FILE} ({reason})") from None
            # it holds this configuration (check() said so) in other words (an earlier version's, another budget
            # range): kept as it is; what this run writes next fails and says so if the folder cannot be written
            logger.info("%s: not refreshed (%s); it holds this run's configuration", config_path, reason)

    def config_text(self) -> str:
        """``config.cfg``'s text: every key, defaults included, and a comment naming the sections this run
        never reads (a training's ``[method] name = rand`` is the default of a section it has no use for)."""
        text = config_to_ini(self.cfg)
        keys = set(self.tolerate)
        unread = [s for s in SECTIONS if all((s, f.name) in keys for f in dataclasses.fields(getattr(self.cfg, s)))]
        if not unread:
            return text
        first, rest = text.split("\n", 1)
        return (f"{first}\n# not read by this run, so without effect here: "
                f"{', '.join(f'[{s}]' for s in unread)}\n{rest}")

    def _lock(self) -> None:
        path = os.path.join(self.path, LOCK_FILE)
        for _ in range(5):  # the lock file removed (by a run that failed and cleaned up) between open and lock: again
            try:
                fh = open(path, "a+", encoding="utf-8")
            except FileNotFoundError:
                raise RunDirError(f"{self.path}: the run directory was removed meanwhile (another run that started "
                                  f"into it failed and cleaned up); run again") from None
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                    return  # a read-only directory: nothing here can be written, so nothing to protect
                raise RunDirAccessError(f"{self.path}: cannot open its lock file ({exc.strerror})") from None
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                raise RunDirError(f"{self.path}: another run is writing this directory (process {holder}); "
                                  f"wait for it or choose another [run] out_dir") from None
            if _same_file(fh, path):
                break
            fh.close()  # locked a file no longer at its name: another run may lock the one there now
        else:
            raise RunDirError(f"{self.path}: its lock file keeps being replaced; is another tool removing it?")
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh

    def close(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> "RunDir":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is not None and exc[1] is not None:
                # the command line's Ctrl-C line: nothing to resume, unless this is a run inside another
                # one (a search's train/), whose results are saved
                nested = os.path.exists(os.path.join(os.path.dirname(os.path.abspath(self.path)), CONFIG_FILE))
                if self._created and self._remove_if_unused():
                    # (a folder that held files may hold results of an earlier run whose config.cfg was deleted)
                    exc[1].tfnas_nothing_saved = self._fresh and not nested
                elif not self._created and self._holds_nothing():  # e.g. left so by a run killed before a result
                    exc[1].tfnas_nothing_saved = not nested
                self._put_back_config()
        finally:
            self.close()

    def _put_back_config(self) -> None:
        """After a run that failed before it wrote anything, the ``config.cfg`` it found (its ``[run]`` keys, e.g.
        ``worker_threads``, say how the directory's results were computed)."""
        try:
            if self._previous is not None and _stamps(self.path) == self._previous[1]:
                atomic_write_text(os.path.join(self.path, CONFIG_FILE), self._previous[0])
        except OSError as exc:
            logger.debug("could not put back %s: %s", CONFIG_FILE, exc)

    def _remove_made_parents(self) -> None:
        """The folders above the directory that this run made, innermost first; one holding something
        else stays (and so do those above it)."""
        for parent in self._made_parents:
            try:
                os.rmdir(parent)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENAMETOOLONG):  # not made (the name failed)
                    break

    def _remove_if_unused(self) -> bool:
        """After a run that failed (or was stopped) before it wrote anything but ``config.cfg``, what it
        wrote into a directory without a ``config.cfg`` is removed (what was there before stays), and
        the directory too if the run made it: nothing half-made is left, and a corrected config may use
        it. An empty ``search_state/`` (made before a search's first checkpoint) counts as nothing
        written. Returns whether it removed."""
        try:
            names = [name for name in os.listdir(self.path) if name not in self._before]
            if not all(self._unused(name) for name in names):
                return False
            for name in names:
                if name == STATE_DIR:
                    os.rmdir(os.path.join(self.path, name))
                elif name != LOCK_FILE:
                    os.remove(os.path.join(self.path, name))
            if LOCK_FILE in names and self._lock_fh is not None:
                # removed while held: a run waiting for it finds a fresh directory
                os.remove(os.path.join(self.path, LOCK_FILE))
            self.close()
            if self._made:
                os.rmdir(self.path)
                self._remove_made_parents()
            return True
        except OSError as exc:  # the error that ended the run is the one to report
            logger.debug("could not remove the unused run directory %s: %s", self.path, exc)
            return False

    def discard(self) -> None:
        """After a run that ended without a result to keep (a search that found no answer), removes what it
        wrote, and the directory if it made it, as :meth:`_remove_if_unused` does after an earlier failure:
        only in a directory that had no ``config.cfg`` before (a resumed run's directory stays as it is)."""
        if not self._created:
            return
        try:
            for name in os.listdir(self.path):
                if name in self._before or name == LOCK_FILE:
                    continue
                full = os.path.join(self.path, name)
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full)
                else:
                    os.remove(full)
        except OSError as exc:  # the error that ended the run is the one to report
            logger.debug("could not remove what the failed run wrote in %s: %s", self.path, exc)
            return
        self._remove_if_unused()

    def _unused(self, name: str) -> bool:
        return unused_entry(self.path, name, self.derived)

    def _holds_nothing(self) -> bool:
        """Whether the directory holds no result at all."""
        return holds_nothing(self.path, self.derived)

    def file(self, name: str) -> str:
        return self.store.path(name)
