"""YAML reading that remembers where every key came from.

Errors about a protocol must name the file, the line and the key path, so the
loader keeps a map from key paths to line numbers next to the parsed data.
Duplicate keys, which plain YAML loaders silently overwrite, are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from studyhub.errors import ProtocolError

__all__ = ["MAX_BYTES", "Located", "PathKey", "Problem", "format_path", "read_yaml"]

#: Protocol files are small; anything larger is refused before parsing.
MAX_BYTES = 1_000_000

PathKey = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading YAML 1.2 / JSON floats such as 1e3 and 5.0e-2 as numbers.

    PyYAML follows YAML 1.1, where an exponent needs a dot and a sign (1.0e+3) and
    ``1e3`` is text; a protocol means the number.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, with its place and its fix."""

    line: int | None
    path: str
    message: str
    fix: str

    def render(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        key = f", key {self.path}" if self.path else ""
        return f"{where}{key}: {self.message}. Fix: {self.fix}"


@dataclass
class Located:
    """Parsed YAML data plus the line of every key path (1-based)."""

    file: Path
    text: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: PathKey) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        norm = tuple(str(p) for p in path)
        for end in range(len(norm), -1, -1):
            line = self.lines.get(norm[:end])
            if line is not None:
                return line
        return None

    def fail(self, problems: list[Problem]) -> ProtocolError:
        """One error listing every problem of this file."""
        return file_error(self.file, problems)


def file_error(file: Path, problems: list[Problem], *, cap: int = 20) -> ProtocolError:
    """Build the one message that lists every problem (up to ``cap``) of ``file``."""
    shown = [f"  - {p.render()}" for p in problems[:cap]]
    if len(problems) > cap:
        shown.append(f"  ... and {len(problems) - cap} more")
    noun = "problem" if len(problems) == 1 else "problems"
    return ProtocolError(f"{file}: {len(problems)} {noun}\n" + "\n".join(shown))


def format_path(path: PathKey) -> str:
    """Render ``('arms', 1, 'method')`` as ``arms[1].method``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_yaml(file: Path, *, what: str) -> Located:
    """Read ``file`` as one YAML mapping, refusing duplicates, aliases loops and junk.

    Raises
    ------
    ProtocolError
        When the file is missing, unreadable, too large, not YAML, or not a mapping.
    """
    if not file.exists():
        raise ProtocolError(
            f"{file}: the {what} file does not exist. Fix: check the path "
            "(paths inside a protocol are relative to the protocol file)"
        )
    if not file.is_file():
        raise ProtocolError(
            f"{file}: the {what} path is a folder, not a file. Fix: name the YAML file"
        )
    raw = file.read_bytes()
    if len(raw) > MAX_BYTES:
        raise ProtocolError(
            f"{file}: the {what} file is {len(raw)} bytes, over the {MAX_BYTES}-byte limit. "
            "Fix: a protocol is a short YAML file; move data into the data source"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"{file}: the {what} is not UTF-8 text (byte {exc.start}). Fix: save it as UTF-8"
        ) from None
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise ProtocolError(
                    f"{file}: the {what} file is empty. Fix: write the {what} as a YAML mapping "
                    "(see protocols/ for a complete example)"
                )
            located = Located(file=file, text=text, data=None)
            _check_node(node, (), located, set())
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise file_error(
            file,
            [Problem(line, "", f"invalid YAML: {problem}", "correct the YAML syntax at that line")],
        ) from None
    except yaml.YAMLError as exc:
        raise file_error(
            file, [Problem(None, "", f"invalid YAML: {exc}", "correct the YAML syntax")]
        ) from None
    except RecursionError:
        raise file_error(
            file, [Problem(None, "", "YAML nested too deeply", "flatten the file")]
        ) from None
    if not isinstance(data, dict):
        raise file_error(
            file,
            [
                Problem(
                    1,
                    "",
                    f"the {what} must be a YAML mapping of keys, found {type(data).__name__}",
                    "start the file with keys such as 'id:' (see protocols/ for an example)",
                )
            ],
        )
    located.data = data
    return located


def _check_node(node: yaml.Node, path: PathKey, located: Located, seen: set[int]) -> None:
    """Record lines, refuse duplicate and non-scalar keys, and stop at aliases seen before."""
    if id(node) in seen:  # an alias: its content was recorded where it was defined
        return
    seen.add(id(node))
    located.lines.setdefault(tuple(str(p) for p in path), node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        keys: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise file_error(
                    located.file,
                    [
                        Problem(
                            key_node.start_mark.line + 1,
                            format_path(path),
                            "a key is a list or mapping",
                            "use plain words as keys",
                        )
                    ],
                )
            if key_node.tag == "tag:yaml.org,2002:merge":
                _check_node(value_node, path, located, seen)
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in keys:
                raise file_error(
                    located.file,
                    [
                        Problem(
                            line,
                            format_path((*path, key)),
                            f"duplicate key (first given on line {keys[key]})",
                            "keep one of the two",
                        )
                    ],
                )
            keys[key] = line
            child = (*path, _key_value(key_node))
            located.lines[tuple(str(p) for p in child)] = line
            _check_node(value_node, child, located, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_node(item, (*path, index), located, seen)


def _key_value(node: yaml.ScalarNode) -> str | int:
    """Integer-looking plain keys stay ints (likert anchors), everything else is text."""
    if node.tag == "tag:yaml.org,2002:int":
        try:
            return int(node.value)
        except ValueError:
            return str(node.value)
    return str(node.value)
