"""The EC issuers' AC layouts file (``ykt clearing serve --ec-layouts FILE``): which PDOL data
each issuer's cards cover with a TC, in which order, by the BIN their PANs start with.

A strict TOML file (docs/operators.md): one ``[[layout]]`` per issuer with ``bin``, ``name``,
``pdol`` (the DOL the terminal builds the data by, in hex) and ``skip`` (the leading objects
the AC leaves out; 1, the TTQ, by default). A PAN no BIN matches is read by the software
card's layout.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from simulators.clearing.verify import AcLayout
from terminal.text import FileError, TextError, hex_bytes
from terminal.tomlfile import TomlFile, read_toml

WHAT = "EC layouts file"
LAYOUT_KEYS = {"bin": str, "name": str, "pdol": str, "skip": int}
SCHEMA = {"layout": [LAYOUT_KEYS]}
BIN = re.compile(r"[0-9]{4,12}", re.ASCII)


class _LayoutsFile(TomlFile):
    what = WHAT


def parse_ec_layouts(
    data: dict[str, Any], *, path: str | Path | None = None, text: str | None = None
) -> dict[str, AcLayout]:
    """The AC layout of each BIN in ``data``; FileError names the line of what is wrong."""
    f = _LayoutsFile(data, path, text)
    f.check_keys(data, SCHEMA, ())
    layouts: dict[str, AcLayout] = {}
    for index, table in enumerate(data.get("layout", [])):
        f.after = f.table_line("layout", index)
        for key in ("bin", "name", "pdol"):
            if key not in table:
                raise f.error(("layout",), f"layout {index + 1} is missing {key!r}")
        bin_ = f.text_value(table["bin"], ("layout", "bin"))
        if not BIN.fullmatch(bin_):
            raise f.error(("bin",), f"layout.bin must be 4 to 12 digits, got {bin_!r}")
        other = next((b for b in layouts if b.startswith(bin_) or bin_.startswith(b)), None)
        if other is not None:
            raise f.error(
                ("bin",), f"BIN {bin_} overlaps BIN {other}: a PAN would have two layouts"
            )
        name = f.text_value(table["name"], ("name",))
        pdol = f.text_value(table["pdol"], ("pdol",))
        skip = f.count(table.get("skip", 1), ("skip",), 16)
        try:
            layouts[bin_] = AcLayout(name, hex_bytes(pdol, "layout.pdol"), skip)
        except (TextError, ValueError) as exc:
            raise f.error(("pdol",), str(exc)) from None
    return layouts


def load_ec_layouts(path: str | Path) -> dict[str, AcLayout]:
    text, data = read_toml(path, WHAT, lambda what, line: FileError(path, line, what))
    return parse_ec_layouts(data, path=path, text=text)
