"""Every command-line flag and spec key that the package's texts name exists.

Advice ("refit with a larger truncation (mixing.truncation)", "use --engine collapsed") is only
useful if the user can type it. This scans every string literal in the package (f-string parts
included) and the report templates, extracts the flags (--name) and spec keys (section.key, and
'key = "value" in the spec's [section] table'), and checks each against the CLI parser and the
spec schema.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import bayesmix
from bayesmix import spec as spec_mod
from bayesmix.cli import build_parser

PKG = Path(bayesmix.__file__).parent
FLAG = re.compile(r"(?<![\w(-])(--[a-z][a-z0-9-]*)(?![\w-]*\s*:)")  # not CSS var(--x), --x:
DOTTED = re.compile(r"\b(mixing|kernel|sampler)\.([A-Za-z_][A-Za-z0-9_]*)")
TABLE = re.compile(r"\b([a-z_0-9]+) = \"[^\"]*\" in the spec's \[(mixing|kernel|sampler)\] table")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of docstring nodes: they describe the Python API (``spec.mixing.n_components``),
    not what a user types."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _texts() -> list[tuple[str, str]]:
    """(where, text) for every non-docstring string constant in the package and every
    template line."""
    out = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in skip
            ):
                out.append((f"{path.relative_to(PKG)}:{node.lineno}", node.value))
    for path in sorted((PKG / "report" / "templates").glob("*.j2")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            out.append((f"{path.relative_to(PKG)}:{i}", line))
    return out


def _cli_flags() -> set[str]:
    flags = {"--help", "--version"}
    stack = [build_parser()]
    while stack:
        parser = stack.pop()
        for action in parser._actions:
            flags.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return flags


def _spec_keys() -> dict[str, set[str]]:
    return {
        "mixing": set(spec_mod._MIXING_KEYS) | spec_mod._PY_KEYS | spec_mod._MFM_KEYS,
        "kernel": set(spec_mod._KERNEL_KEYS),
        "sampler": set(spec_mod._SAMPLER_KEYS),
    }


def test_every_named_flag_and_key_exists():
    flags, keys = _cli_flags(), _spec_keys()
    named_flags, named_keys, bad = set(), set(), []
    for where, text in _texts():
        for flag in FLAG.findall(text):
            named_flags.add(flag)
            if flag not in flags:
                bad.append(f"{where}: flag {flag}")
        for section, key in DOTTED.findall(text) + [(s, k) for k, s in TABLE.findall(text)]:
            named_keys.add(f"{section}.{key}")
            if key not in keys[section]:
                bad.append(f"{where}: spec key {section}.{key}")
    assert not bad, "\n".join(bad)
    # the scan really sees the advice texts
    assert {"--engine", "--draws", "--tune", "--seed", "--chains"} <= named_flags
    assert {"mixing.truncation", "kernel.covariance"} <= named_keys


def test_the_scan_catches_a_wrong_key():
    """The check can fail: the key the old truncation advice named is not in the schema."""
    assert "n_components" not in _spec_keys()["mixing"]
    assert DOTTED.findall("(mixing.n_components)") == [("mixing", "n_components")]
    assert "--n-components" not in _cli_flags()
