"""A sentence with its code and values: the logs keep its English, the operator's catalogue
(terminal/words.py) says it in the terminal's language.

A ``Note`` is the English sentence the logs, the journals and ``--json`` carry (it is a
``str``), with its ``code`` and ``values`` beside it; each kind of note (fare notes, door
refusals) is a subclass naming its English templates and its catalogue keys' prefix. Values
are language-neutral (amounts already shown as money, times, codes, numbers) or other notes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar


def note_values(values: Mapping[str, Any], say: Callable[[Note], str], sep: str) -> dict[str, str]:
    """A note's values as a sentence shows them: other notes by ``say`` (a note -> words),
    a tuple of them joined by ``sep``, anything else as written."""
    shown: dict[str, str] = {}
    for name, value in values.items():
        if isinstance(value, Note):
            shown[name] = say(value)
        elif isinstance(value, tuple):
            shown[name] = sep.join(say(v) if isinstance(v, Note) else str(v) for v in value)
        else:
            shown[name] = str(value)
    return shown


class Note(str):
    """An English sentence with the code and values that word it in the operator's language."""

    texts: ClassVar[Mapping[str, str]] = {}  # code -> the English template
    prefix: ClassVar[str] = ""  # the catalogue key is "<prefix>.<code>"
    code: str
    values: dict[str, Any]

    def __new__(cls, code: str, **values: Any) -> Note:
        note = super().__new__(cls, cls.texts[code].format(**note_values(values, str, "; ")))
        note.code = code
        note.values = values
        return note

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (self.code,), self.values

    @property
    def key(self) -> str:
        """The catalogue key of its words."""
        return f"{self.prefix}.{self.code}"
