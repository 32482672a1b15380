"""Up-front checks of the files and folders a command will write.

A command that writes a file checks its path before it does any work, so that a
typo in an output path costs a second, not a finished analysis, and leaves
nothing half-written. Each check raises :class:`~studyhub.errors.InputError`
(exit 2) naming the option, the path and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from studyhub.errors import InputError

__all__ = ["writable_file", "writable_folder"]


def _can_write(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def writable_file(path: Path, *, option: str) -> Path:
    """Refuse an output file path whose folder is missing or read-only; return the path.

    Parameters
    ----------
    path : Path
        The file the command will write (it may exist: it is replaced).
    option : str
        The command-line option that named it, e.g. ``--imrmc-out``.

    Returns
    -------
    Path
        ``path`` unchanged.

    Raises
    ------
    InputError
        If ``path`` is a folder, its folder does not exist or is not a folder, or
        the folder or an existing file there is not writable.
    """
    shown = str(path)
    if path.is_dir():
        raise InputError(
            f"{option} {shown!r} is a folder; give the path of a file to write, "
            f"e.g. {str(path / 'out')!r}"
        )
    folder = path.parent
    if not folder.exists():
        raise InputError(
            f"{option} {shown!r}: folder {str(folder)!r} does not exist; create it first "
            f"(mkdir -p {str(folder)!r}) or give a path in an existing folder"
        )
    if not folder.is_dir():
        raise InputError(
            f"{option} {shown!r}: {str(folder)!r} is a file, not a folder; give a path "
            "in an existing folder"
        )
    if not _can_write(folder) or (path.exists() and not os.access(path, os.W_OK)):
        target = f"file {shown!r}" if path.exists() else f"folder {str(folder)!r}"
        raise InputError(
            f"{option} {shown!r}: {target} is not writable; choose a path in a folder you "
            "can write to, or change its permissions"
        )
    return path


def writable_folder(path: Path, *, option: str) -> Path:
    """Refuse an output folder that cannot be created or written; return the path.

    The folder itself may be missing (the command creates it); its nearest
    existing parent must then be a writable folder.

    Parameters
    ----------
    path : Path
        The folder the command writes into.
    option : str
        The command-line option that named it, e.g. ``--out``.

    Returns
    -------
    Path
        ``path`` unchanged.

    Raises
    ------
    InputError
        If ``path`` is a file, or the folder (or the nearest existing parent it
        would be created in) is not a writable folder.
    """
    shown = str(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == path and not path.is_dir():
        raise InputError(f"{option} {shown!r} is a file; give a folder (it is created if missing)")
    if not existing.is_dir():
        raise InputError(
            f"{option} {shown!r}: {str(existing)!r} is a file, not a folder; give a folder path "
            "(it is created if missing)"
        )
    if not _can_write(existing):
        where = "" if existing == path else f" (it would be created in {str(existing)!r})"
        raise InputError(
            f"{option} {shown!r}: folder {str(existing)!r} is not writable{where}; choose a "
            "folder you can write to, or change its permissions"
        )
    return path
