"""Every key of `evolver.toml` is read by the code: a key that changes the config hash but nothing else is a lie.

The check reads the source, not a run: for each leaf key `a.b.c` it looks for an attribute chain
ending in `b.c` (`cfg.config.reflection.k`, `tcfg.sft.mode` where `tcfg = ....training`), or for
the key read through a variable annotated with the key's config class (`s: SamplingConfig` ... `s.top_p`).
Aliases by assignment (`r = c.reflection`) and attributes holding a config object (`self.cfg = cfg`
in a constructor whose `cfg` is annotated) are followed one step.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from evolver.config.load import REMOVED_KEYS
from evolver.config.schema import EvolverConfig

SOURCE = Path(__file__).resolve().parents[1] / "evolver"


def _sub(field_annotation: object) -> type[BaseModel] | None:
    a = field_annotation
    return a if isinstance(a, type) and issubclass(a, BaseModel) else None


def leaf_keys(cls: type[BaseModel] = EvolverConfig, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path, owning class) of every leaf key; lists of tables (extra_instructions) count as one leaf."""
    for name, f in cls.model_fields.items():
        sub = _sub(f.annotation)
        if sub is not None:
            yield from leaf_keys(sub, (*prefix, name))
        else:
            yield (*prefix, name), cls.__name__


def config_classes(cls: type[BaseModel] = EvolverConfig) -> set[str]:
    out = {cls.__name__}
    for f in cls.model_fields.values():
        sub = _sub(f.annotation)
        if sub is not None:
            out |= config_classes(sub)
    return out


class Reads(ast.NodeVisitor):
    """Attribute chains read anywhere, with one step of aliasing."""

    def __init__(self, classes: set[str]) -> None:
        self.classes = classes
        self.pairs: set[tuple[str, ...]] = set()  # consecutive attribute names (and single names)
        self.typed: set[tuple[str, str]] = set()  # (config class, key) read through an annotated variable
        self.scopes: list[dict[str, tuple[str, str]]] = [{}]
        self.self_attrs: dict[str, str] = {}  # self.<attr> -> config class

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        scope: dict[str, tuple[str, str]] = {}
        for a in (*node.args.args, *node.args.kwonlyargs):
            if a.annotation is not None:
                names = [n.strip() for n in ast.unparse(a.annotation).strip("'\"").split("|")]
                known = [n for n in names if n in self.classes]
                if known:
                    scope[a.arg] = ("class", "|".join(known))  # a union reads the key of each member
        self.scopes.append(scope)
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    @staticmethod
    def _chain(node: ast.expr) -> tuple[str | None, list[str]]:
        names: list[str] = []
        while isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        return (node.id if isinstance(node, ast.Name) else None), names[::-1]

    def _alias(self, name: str | None) -> tuple[str, str] | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def visit_Assign(self, node: ast.Assign) -> None:
        if len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name) and isinstance(value, ast.Attribute):
                self.scopes[-1][target.id] = ("attr", self._chain(value)[1][-1])
            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self"
                    and isinstance(value, ast.Name)):
                alias = self._alias(value.id)
                if alias is not None and alias[0] == "class":
                    self.self_attrs[target.attr] = alias[1]
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        base, names = self._chain(node)
        alias = self._alias(base)
        if base == "self" and len(names) >= 2 and names[0] in self.self_attrs:
            self.typed.add((self.self_attrs[names[0]], names[1]))
        if alias is not None and alias[0] == "class":
            self.typed.update((cls, names[0]) for cls in alias[1].split("|"))
        elif alias is not None:
            names = [alias[1], *names]
        for i in range(len(names)):
            self.pairs.add(tuple(names[i:i + 2]))
        if not isinstance(node.value, ast.Attribute):
            self.generic_visit(node)


def unread_keys(source: Path = SOURCE) -> list[str]:
    reads = Reads(config_classes())
    for path in sorted(source.rglob("*.py")):
        reads.visit(ast.parse(path.read_text(encoding="utf-8")))
    out = []
    for path, owner in leaf_keys():
        want = path[-2:] if len(path) > 1 else ("config", path[0])
        if want not in reads.pairs and (owner, path[-1]) not in reads.typed:
            out.append(".".join(path))
    return out


def test_every_schema_key_is_read_somewhere() -> None:
    assert unread_keys() == []


def test_the_check_finds_a_key_nothing_reads(tmp_path: Path) -> None:
    """The same scan over a copy of the code whose one read of `reflection.k` is gone names exactly that key."""
    import shutil

    copy = tmp_path / "evolver"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__", "assets"))
    stage = copy / "stages" / "generate.py"
    code = stage.read_text()
    assert code.count("c.reflection.k,") == 1
    stage.write_text(code.replace("c.reflection.k,", "4,"))
    assert unread_keys(copy) == ["reflection.k"]


def test_removed_keys_say_what_happened(tmp_path: Path, cli) -> None:  # noqa: ANN001
    path = tmp_path / "evolver.toml"
    for dotted, why in REMOVED_KEYS.items():
        *tables, key = dotted.split(".")
        path.write_text(f"[{'.'.join(tables)}]\n{key} = 1\n")
        r = cli("config", "check", path)
        assert r.exit_code == 2 and r.stderr.strip() == f"evolver: error: {path}: {dotted}: {why}; delete the key"
