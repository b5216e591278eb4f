"""Command-line options generated from dataclasses: each option's default and help are stated once, on
the dataclass field (`option(...)`), and `add_options` turns the fields into argparse arguments.

Torch-free: `sdvideo --help` builds every parser without loading torch.

    @dataclass
    class Config:
        frames: int = option(5, "frames per clip", group="clips")
        strides: list[int] = option(factory=lambda: [1], help="...", nargs="+", group="clips")
        flip: bool = option(False, "mirror clips", group="clips", expert=True)

Field metadata (all optional): help, group (argparse group title), choices, metavar, nargs, flag (the
option string, default `--field-name`), action ("append"; bools get store_true, or --x/--no-x when
`negatable` or default True), cli (False: not an option), expert (True: hidden from `--help`, shown by
`--help-all`), help_all (a longer help shown by `--help-all`), const (with nargs "?"). The help text gets " (default: X)" appended where the default says something.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Callable

_MISSING = dataclasses.MISSING
_TYPES = {"int": int, "float": float, "str": str}
_METAVARS = {int: "N", float: "X", str: "TEXT"}


def option(default: Any = _MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
           group: str | None = None, choices: tuple[str, ...] | None = None, metavar: str | None = None,
           nargs: str | None = None, flag: str | None = None, action: str | None = None, negatable: bool = False,
           expert: bool = False, cli: bool = True, show_default: bool = True, const: Any = None,
           help_all: str | None = None) -> Any:
    """A dataclass field carrying its command-line option (see the module docstring)."""
    metadata = dict(help=help, group=group, choices=choices, metavar=metavar, nargs=nargs, flag=flag, action=action,
                    negatable=negatable, expert=expert, cli=cli, show_default=show_default, const=const,
                    help_all=help_all)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_default(f: dataclasses.Field) -> Any:
    """A field's default (its factory's value), or dataclasses.MISSING for a required field."""
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return _MISSING


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _element_type(annotation: str) -> tuple[type, bool]:
    """(element type, is a list) of a string annotation like "int", "float | None", "list[int]"."""
    text = str(annotation).replace(" ", "")
    parts = [p for p in text.split("|") if p != "None"]
    text = parts[0] if parts else "str"
    if text.startswith("list[") and text.endswith("]"):
        return _TYPES.get(text[5:-1], str), True
    return _TYPES.get(text, str), False


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_options(parser: argparse.ArgumentParser, cls: type, groups: dict[str, argparse._ArgumentGroup] | None = None,
                expert_actions: list | None = None) -> dict[str, argparse._ArgumentGroup]:
    """Add one argparse argument per field of dataclass `cls` (those with `cli` true), in field order, into
    argument groups by the fields' `group` (`groups` maps titles to groups already made, and is returned
    with the new ones). Expert options get their help suppressed; they, and options with a longer
    `help_all`, are appended to `expert_actions` with the help `HelpAll` (`--help-all`) shows."""
    groups = {} if groups is None else groups
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", True) or not f.init:
            continue
        title = meta.get("group")
        if title is None:
            target: Any = parser
        else:
            if title not in groups:
                groups[title] = parser.add_argument_group(title)
            target = groups[title]
        default = field_default(f)
        kind, is_list = _element_type(f.type)
        help_text = meta.get("help") or ""
        kw: dict[str, Any] = dict(dest=f.name)
        if "bool" in str(f.type) and not is_list:
            if meta.get("negatable") or default is True:
                kw.update(action=OnOff, default=bool(default))
            else:
                kw.update(action="store_true", default=bool(default))
        else:
            if default is _MISSING:
                kw["required"] = True
            else:
                kw["default"] = default
            if meta.get("action") == "append":
                kw.update(action="append", type=kind)
            else:
                kw["type"] = kind
                if is_list:
                    kw["nargs"] = meta.get("nargs") or "+"
                elif meta.get("nargs"):
                    kw["nargs"] = meta["nargs"]
                    if meta.get("const") is not None:
                        kw["const"] = meta["const"]
            if meta.get("choices"):
                kw["choices"] = meta["choices"]
            if meta.get("metavar"):
                kw["metavar"] = meta["metavar"]
            elif not meta.get("choices"):
                kw["metavar"] = _METAVARS.get(kind, "VALUE")
        kw["help"] = _with_default(help_text, default, meta, kw)
        action = target.add_argument(flag_of(f), **kw)
        if meta.get("expert") or meta.get("help_all"):
            if expert_actions is not None:
                full = _with_default(meta["help_all"], default, meta, kw) if meta.get("help_all") else action.help
                expert_actions.append((action, full))
            if meta.get("expert"):
                action.help = argparse.SUPPRESS
    return groups


def _with_default(help_text: str, default: Any, meta: Any, kw: dict[str, Any]) -> str:
    """The help text, with " (default: X)" where the default says something, escaped for argparse."""
    # zeros, None and empty defaults go unsaid (a help text says what 0 or unset means where it matters)
    if kw.get("action") is OnOff:
        return f"{help_text} (default: {'on' if default else 'off'})".replace("%", "%%")
    shown = (default is not _MISSING and bool(default) and meta.get("show_default", True)
             and kw.get("action") not in ("append", "store_true"))
    if shown:
        help_text = f"{help_text} (default: {_show(default)})" if help_text else f"default: {_show(default)}"
    return help_text.replace("%", "%%")


def values_for(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The parsed values of `cls`'s command-line fields, by field name."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if f.metadata.get("cli", True) and f.init and hasattr(args, f.name)}


class OnOff(argparse.Action):
    """A boolean option as --x / --no-x (argparse.BooleanOptionalAction, without the help text some Python
    versions append)."""

    def __init__(self, option_strings: list[str], dest: str, default: Any = None, **kwargs: Any) -> None:
        strings = [s for o in option_strings for s in ((o, "--no-" + o[2:]) if o.startswith("--") else (o,))]
        super().__init__(strings, dest=dest, nargs=0, default=default, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, not (option_string or "").startswith("--no-"))


class HelpAll(argparse.Action):
    """`--help-all`: print the help with every option (expert ones included) and exit."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, expert: list | None = None,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS, **kwargs)
        self.expert = expert if expert is not None else []

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        for action, help_text in self.expert:
            action.help = help_text
        parser.print_help(sys.stdout)
        parser.exit()
