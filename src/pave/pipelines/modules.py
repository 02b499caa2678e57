"""Importing a project's modules (``module:name`` references) and fingerprinting step code.

A project's modules are imported fresh for every run, under their own names (so outputs that
hold instances of project classes pickle normally), with the project folder first on ``sys.path``.

The fingerprint of a step function, part of its cache key, covers what can change its result:
the function's code, the module-level statements of its module (imports, constants), the functions
and classes of the module it references (transitively), and the full text of other project modules
imported by that module. Code is compared after parsing (``ast.unparse``), so comments and
formatting do not invalidate the cache. Editing ``train`` re-runs ``train``, not ``prepare``.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import hashlib
import importlib
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pave.errors import InvalidInput
from pave.pipelines.errors import PipelineDefinitionError

# Forgetting a project's modules and importing them again touch ``sys.modules`` and ``sys.path``,
# which the process shares: ``pave tune`` on Ray runs several trials' runs in threads of one
# process, and one thread forgetting ``steps`` while another is importing it made the import fail
# (importlib's KeyError: 'steps'). Both hold this lock, so each import sees a consistent state.
_IMPORTING = threading.RLock()


def local_top_level_names(project_dir: Path) -> set[str]:
    """Top-level module names a project folder provides (``x.py`` files and packages)."""
    names = {p.stem for p in project_dir.glob("*.py")}
    names |= {p.parent.name for p in project_dir.glob("*/__init__.py")}
    return names


@contextmanager
def project_imports(project_dir: Path) -> Iterator[None]:
    """Make ``project_dir``'s modules importable, fresh (forgetting copies from earlier runs)."""
    root = str(project_dir.resolve())
    local = local_top_level_names(project_dir)
    with _IMPORTING:
        for name in list(sys.modules):
            if name.partition(".")[0] in local:
                del sys.modules[name]
        sys.path.insert(0, root)
        importlib.invalidate_caches()
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # a step may have removed it
            sys.path.remove(root)


def resolve(reference: str, project_dir: Path, *, what: str) -> Any:
    """Import the object named by ``module:attr`` (call inside :func:`project_imports`).

    Raises:
        PipelineDefinitionError: no such module file, an import error in it, or no such attribute.
    """
    module_name, _, attr = reference.partition(":")
    path = module_file(module_name, project_dir)
    try:
        with _IMPORTING:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PipelineDefinitionError(
            f"{what} {reference}: importing {path.name} failed: {exc}",
            hint="install the missing package in this environment, or fix the import",
        ) from exc
    except Exception as exc:
        raise PipelineDefinitionError(
            f"{what} {reference}: importing {path.name} raised {type(exc).__name__}: {exc}",
            hint=f"fix {path}; module-level code runs on every pave run",
        ) from exc
    if not hasattr(module, attr):
        # what the file defines itself, not what it imports (pd, LogisticRegression, annotations...)
        own = sorted(
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
        )
        close = difflib.get_close_matches(attr, own, n=1)
        guess = f"did you mean {close[0]}? " if close else ""
        defined = f"{path.name} defines {', '.join(own[:12])}" if own else f"{path.name} defines nothing yet"
        raise PipelineDefinitionError(
            f"{what} {reference}: {path.name} has no {attr!r}",
            hint=f"{guess}{defined}; fix pave.yaml or define {attr} in {path.name}",
        )
    return getattr(module, attr)


def module_file(module_name: str, project_dir: Path) -> Path:
    """The file of a project module (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``)."""
    base = project_dir.joinpath(*module_name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise PipelineDefinitionError(
        f"module {module_name} not found in the project: looked for {base.with_suffix('.py')}",
        hint="module names in pave.yaml are files relative to the project folder (steps:train -> steps.py)",
    )


class Fingerprints:
    """Code fingerprints for the step functions of one project (parses each file once)."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        self.local = local_top_level_names(project_dir)
        self._parsed: dict[Path, tuple[str, dict[str, ast.AST], dict[str, set[str]], list[str]]] = {}
        self._files: dict[Path, str] = {}

    def of(self, reference: str) -> str:
        """sha256 fingerprint of the function ``module:function``."""
        module_name, _, name = reference.partition(":")
        path = module_file(module_name, self.project_dir)
        preamble, defs, uses, imports = self._parse(path)
        if name not in defs:
            # defined by assignment or import (e.g. `train = make_trainer()`): the whole module counts
            body = self._file_text(path)
        else:
            wanted, todo = set(), [name]
            while todo:
                current = todo.pop()
                if current in wanted:
                    continue
                wanted.add(current)
                todo.extend(uses[current] - wanted)
            body = preamble + "\n".join(ast.unparse(defs[n]) for n in sorted(wanted))
        digest = hashlib.sha256(body.encode())
        for other in self._local_imports(path, imports):
            digest.update(other.as_posix().encode() + self._file_text(other).encode())
        return digest.hexdigest()

    def _parse(self, path: Path) -> tuple[str, dict[str, ast.AST], dict[str, set[str]], list[str]]:
        if path not in self._parsed:
            try:
                tree = ast.parse(self._file_text(path), filename=str(path))
            except SyntaxError as exc:
                raise InvalidInput(
                    f"{path.name} line {exc.lineno}: syntax error: {exc.msg}", hint=f"fix {path}"
                ) from exc
            defs: dict[str, ast.AST] = {}
            rest: list[str] = []
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    defs[node.name] = node
                else:
                    rest.append(ast.unparse(node))
            uses = {
                name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in defs}
                for name, node in defs.items()
            }
            imports: list[str] = []
            for sub in ast.walk(tree):
                if isinstance(sub, ast.Import):
                    imports += [a.name for a in sub.names]
                elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                    imports += [sub.module] + [f"{sub.module}.{a.name}" for a in sub.names]
            self._parsed[path] = ("\n".join(rest), defs, uses, imports)
        return self._parsed[path]

    def _local_imports(self, path: Path, imports: list[str]) -> list[Path]:
        found: list[Path] = []
        todo = [(path, imports)]
        seen = {path}
        while todo:
            _, names = todo.pop()
            for name in names:
                if name.partition(".")[0] not in self.local:
                    continue
                try:
                    other = module_file(name, self.project_dir)
                except PipelineDefinitionError:
                    continue  # `from pkg import function` names an attribute, not a module
                if other not in seen:
                    seen.add(other)
                    found.append(other)
                    todo.append((other, self._parse(other)[3]))
        return sorted(found)

    def _file_text(self, path: Path) -> str:
        if path not in self._files:
            self._files[path] = path.read_text(encoding="utf-8")
        return self._files[path]


def callable_or_raise(obj: Any, reference: str) -> Callable[..., Any]:
    if not callable(obj):
        raise PipelineDefinitionError(
            f"step function {reference} is a {type(obj).__name__}, not a function",
            hint="point `function:` at a def in that module",
        )
    return obj
