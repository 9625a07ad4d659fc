"""Sans-I/O flows: a generator yields Steps (target + command) and is sent ResponseAPDUs.

A flow never touches a reader. ``run`` drives any flow over named channels; tests and
benchmarks drive flows directly, cut the card away after any step, or replay responses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from terminal.apdu.channel import Channel, check
from terminal.apdu.command import CommandAPDU
from terminal.apdu.errors import CardError, TransportError
from terminal.apdu.frozen import quick_init
from terminal.apdu.response import ResponseAPDU

CARD = "card"
SAM = "sam"

T = TypeVar("T")


@quick_init
@dataclass(frozen=True, slots=True)
class Step:
    """The next command of a flow, for ``target`` ("card" or "sam").

    With ``check`` the driver raises the SW's typed exception into the flow at its
    ``yield``; without it the flow receives the raw response and decides itself.
    """

    target: str
    command: CommandAPDU
    check: bool = True


Flow = Generator[Step, ResponseAPDU, T]


# card(command, check=True) and sam(...): a Step for that target, with no frame of their own
card: Callable[..., Step] = functools.partial(Step, CARD)
sam: Callable[..., Step] = functools.partial(Step, SAM)


def run(flow: Flow[T], channels: Mapping[str, Channel], observer: Any = None) -> T:
    """Drive ``flow`` to completion over ``channels`` and return its result.

    Transport errors and (for checked steps) card errors are thrown into the flow at the
    ``yield`` that caused them, so a flow can react (e.g. mark a debit as torn) and
    re-raise. ``observer``, if given, is called with (step, response) after each step.
    """
    try:
        step = next(flow)
    except StopIteration as done:
        return done.value
    while True:
        try:
            if step.check and observer is None:
                response = channels[step.target].exchange(step.command)
            else:
                response = channels[step.target].send(step.command)
                if observer is not None:
                    observer(step, response)
                if step.check:
                    check(response, step.command)
        except (TransportError, CardError) as exc:
            try:
                step = flow.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            step = flow.send(response)
        except StopIteration as done:
            return done.value


def replay(flow: Flow[T], responses: list[ResponseAPDU]) -> T:
    """Drive ``flow`` from precomputed responses (benchmark baseline, unit tests)."""
    pending = list(reversed(responses))
    try:
        step = next(flow)
        while True:
            if not pending:
                raise ValueError(f"replay ran out of responses at {step.command}")
            response = pending.pop()
            if step.check and not response.ok:
                try:
                    check(response, step.command)
                except CardError as exc:
                    step = flow.throw(exc)
                    continue
            step = flow.send(response)
    except StopIteration as done:
        return done.value
