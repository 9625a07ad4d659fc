"""Recorded card traces, mutated, replayed through ``ykt read --replay``'s own code.

Every trace under tests/data (the EMV, qPBOC and social security traces in
tests/data/emv, the T-Union e-purse reads in tests/data/epurse, recorded here from
the software card through the tracing reader, and the other tools' dumps in
tests/data/imports) is mutated with a seeded generator: bit
flips, truncations and extensions of a response, changed status words (61xx and 6Cxx
among them), responses swapped between exchanges, exchanges duplicated or deleted,
BER-TLV length fields that lie, random answers, and data nested deep in templates. Each
mutant goes through the read path in-process (directory discovery, e-purse read,
EMV/qPBOC read with offline data authentication, social security read, and the printing
of the report).

Property: every run ends with a report or a typed project error (``YikatongError``),
never another exception, and within a time limit. ``YKT_FUZZ_MUTATIONS`` sets the
mutants per trace and ``YKT_FUZZ_SEED`` the first seed (``make fuzz``: many, fresh seed).

``python -m tests.adversarial.test_trace_fuzz`` records the e-purse traces again.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from terminal.apdu import tlv
from terminal.apdu.errors import TlvError, YikatongError
from terminal.cli.main import build_parser
from terminal.cli.read import run as read_run
from terminal.readers.importers import import_file
from terminal.readers.trace import Trace, TraceWriter, load_trace

DATA = Path(__file__).resolve().parents[1] / "data"
EPURSE = DATA / "epurse"
TERMINAL_FILE = DATA / "emv" / "terminal.json"
# the traces, and the other tools' dumps that ``--replay`` imports (tests/data/imports)
TRACES = sorted(DATA.rglob("*.trace")) + sorted((DATA / "imports").iterdir())
MUTATIONS = int(os.environ.get("YKT_FUZZ_MUTATIONS", "40"))
FIRST_SEED = int(os.environ.get("YKT_FUZZ_SEED", "0"))
TIME_LIMIT = 10.0  # seconds per replay; a good read takes well under one

# how each trace was taken: its interface, and its terminal data if not terminal.json
CONTACT = {"uics-contact-upi", "ssse-contact-read", "contact-ec-top-up", "emvtools-dda"}
CONTACT |= {"emvtools-sda", "contact-atr-auto"}
_EMVTOOLS = {"unpredictable_number": "00000000", "capabilities": "E0F8C0"}
OWN_TERMINAL = {
    "uics-contact-upi": {"date": "2015-03-16", "unpredictable_number": "7863AFC6"},
    "contact-atr-auto": {"date": "2015-03-16", "unpredictable_number": "7863AFC6"},
    "emvtools-sda": {"date": "2009-01-01", "supported_aids": [{"aid": "A0000000031010"}]}
    | _EMVTOOLS,
    "emvtools-dda": {"date": "2015-01-01", "supported_aids": [{"aid": "A0000000041010"}]}
    | _EMVTOOLS,
}
SWS = (0x9000, 0x6A82, 0x6985, 0x6982, 0x6700, 0x6D00, 0x6283, 0x63C2, 0x9401, 0x6A83)


class Hang(BaseException):
    """A replay that outran its time limit (a BaseException so no ``except`` swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- mutations -------------------------------------------------------------------------------

Exchanges = list[tuple[bytes, bytes]]


def _length_fields(data: bytes) -> list[tuple[int, int, int]]:
    """(offset of the length field, offset of the value, length) of each TLV that parses."""
    found: list[tuple[int, int, int]] = []

    def walk(start: int, end: int, depth: int) -> None:
        pos = start
        while pos < end and depth < 8:
            if data[pos] in tlv.PADDING:
                pos += 1
                continue
            try:
                tag, at = tlv.read_tag(data[:end], pos)
                length, value = tlv.read_length(data[:end], at)
            except TlvError:
                return
            found.append((at, value, length))
            if tlv.is_constructed(tag):
                walk(value, min(value + length, end), depth + 1)
            pos = value + length

    walk(0, len(data), 0)
    return found


def _lie(rng: random.Random, length: int) -> bytes:
    return rng.choice(
        [
            bytes([min(length + 1, 0x7F)]),
            bytes([min(max(length - 1, 0), 0x7F)]),
            bytes([0x7F]),
            b"\x00",
            b"\x80",
            b"\x81\xff",
            b"\x82\xff\xff",
            b"\x84\xff\xff\xff\xff",
            b"\x85\x00\x00\x00\x00\x01",
            b"\x81" + bytes([rng.randrange(256)]),
        ]
    )


def _split(rsp: bytes) -> tuple[bytes, bytes]:
    return rsp[:-2], rsp[-2:]


def _with_data(ex: Exchanges, rng: random.Random) -> int | None:
    """An exchange whose response carries data, if any."""
    candidates = [i for i, (_, rsp) in enumerate(ex) if len(rsp) > 2]
    return rng.choice(candidates) if candidates else None


def flip(ex: Exchanges, rng: random.Random) -> str:
    i = _with_data(ex, rng)
    if i is None:
        return "flip: nothing to flip"
    cmd, rsp = ex[i]
    bit = rng.randrange((len(rsp) - 2) * 8)
    data = bytearray(rsp)
    data[bit // 8] ^= 0x80 >> (bit % 8)
    ex[i] = (cmd, bytes(data))
    return f"flip bit {bit} of response {i}"


def truncate(ex: Exchanges, rng: random.Random) -> str:
    i = _with_data(ex, rng)
    if i is None:
        return "truncate: no data"
    cmd, rsp = ex[i]
    data, sw = _split(rsp)
    keep = rng.randrange(len(data))
    if rng.random() < 0.5:
        ex[i] = (cmd, data[:keep] + sw)
        return f"truncate response {i} data to {keep} bytes (SW kept)"
    ex[i] = (cmd, rsp[: max(2, keep)])
    return f"cut response {i} to {max(2, keep)} bytes"


def extend(ex: Exchanges, rng: random.Random) -> str:
    i = rng.randrange(len(ex))
    cmd, rsp = ex[i]
    data, sw = _split(rsp)
    extra = rng.randbytes(rng.choice((1, 2, 7, 64, 300)))
    if rng.random() < 0.5:
        ex[i] = (cmd, data + extra + sw)
        return f"extend response {i} data by {len(extra)} bytes"
    ex[i] = (cmd, rsp + extra)
    return f"append {len(extra)} bytes after response {i}'s SW"


def change_sw(ex: Exchanges, rng: random.Random) -> str:
    i = rng.randrange(len(ex))
    cmd, rsp = ex[i]
    data, _ = _split(rsp)
    kind = rng.random()
    if kind < 0.2:
        sw = 0x6100 | rng.randrange(256)
    elif kind < 0.4:
        sw = 0x6C00 | rng.randrange(256)
    elif kind < 0.5:
        sw = rng.randrange(0x10000)
    else:
        sw = rng.choice(SWS)
    keep = data if rng.random() < 0.5 else b""
    ex[i] = (cmd, keep + sw.to_bytes(2, "big"))
    return f"SW {sw:04X} on response {i}" + ("" if keep else " without data")


def swap(ex: Exchanges, rng: random.Random) -> str:
    if len(ex) < 2:
        return "swap: one exchange"
    i, j = rng.sample(range(len(ex)), 2)
    (ci, ri), (cj, rj) = ex[i], ex[j]
    ex[i], ex[j] = (ci, rj), (cj, ri)
    return f"swap responses {i} and {j}"


def duplicate(ex: Exchanges, rng: random.Random) -> str:
    i = rng.randrange(len(ex))
    ex.insert(rng.randrange(len(ex) + 1), ex[i])
    return f"duplicate exchange {i}"


def delete(ex: Exchanges, rng: random.Random) -> str:
    i = rng.randrange(len(ex))
    del ex[i]
    return f"delete exchange {i}"


def tlv_length_lie(ex: Exchanges, rng: random.Random) -> str:
    fields = [(i, f) for i, (_, rsp) in enumerate(ex) for f in _length_fields(_split(rsp)[0])]
    if not fields:
        return "tlv: no TLV"
    i, (at, value, length) = rng.choice(fields)
    cmd, rsp = ex[i]
    lie = _lie(rng, length)
    ex[i] = (cmd, rsp[:at] + lie + rsp[value:])
    return f"TLV length {length} at byte {at} of response {i} says {lie.hex().upper()}"


def garbage(ex: Exchanges, rng: random.Random) -> str:
    i = rng.randrange(len(ex))
    cmd, _ = ex[i]
    data = rng.randbytes(rng.choice((1, 4, 16, 100, 255)))
    ex[i] = (cmd, data + b"\x90\x00")
    return f"response {i} is {len(data)} random bytes and 9000"


def nest(ex: Exchanges, rng: random.Random) -> str:
    i = _with_data(ex, rng)
    if i is None:
        return "nest: no data"
    cmd, rsp = ex[i]
    data, sw = _split(rsp)
    depth = rng.choice((2, 33, 100))
    for _ in range(depth):
        data = b"\x70" + tlv.encode_length(len(data)) + data
    ex[i] = (cmd, data + sw)
    return f"response {i} data nested {depth} deep in 70 templates"


MUTATORS: list[Callable[[Exchanges, random.Random], str]] = [
    flip,
    flip,
    truncate,
    extend,
    change_sw,
    change_sw,
    swap,
    duplicate,
    delete,
    tlv_length_lie,
    tlv_length_lie,
    tlv_length_lie,
    garbage,
    nest,
]


def mutate(trace: Trace, seed: int) -> tuple[Trace, list[str]]:
    """One to three seeded mutations of ``trace``."""
    rng = random.Random(seed)
    ex = list(trace.exchanges)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not ex:
            break
        done.append(rng.choice(MUTATORS)(ex, rng))
    return Trace(trace.atr, ex), done


def trace_text(trace: Trace) -> str:
    out = io.StringIO()
    writer = TraceWriter(out)
    writer.atr(trace.atr)
    for cmd, rsp in trace.exchanges:
        writer.exchange(cmd, rsp)
    return out.getvalue()


# -- the read path ---------------------------------------------------------------------------


def read_argv(path: Path, tmp: Path) -> list[str]:
    """``ykt read --replay`` options for ``path``: its interface, terminal data, CA keys."""
    from tests.terminal.emv import emvtools

    name = path.stem
    interface = "contact" if name in CONTACT else "contactless"
    argv = ["read", "--replay", "", "--json", "--interface", interface]
    own = OWN_TERMINAL.get(name)
    if own is None:
        return [*argv, "--terminal-data", str(TERMINAL_FILE)]
    terminal, keys = tmp / f"{name}.json", tmp / "published-ca-keys.json"
    terminal.write_text(json.dumps(own | {"trust_test_keys": True}))
    keys.write_text(json.dumps([k.to_json() for k in (emvtools.VISA_CA_01, emvtools.MC_CA_05)]))
    return [*argv, "--terminal-data", str(terminal), "--ca-keys", str(keys)]


def replay_read(argv: list[str], trace_file: Path) -> str:
    """``ykt read --replay trace_file`` in-process; its output, or its exception."""
    args = build_parser().parse_args(argv)
    args.replay = str(trace_file)
    out = io.StringIO()
    with time_limit(TIME_LIMIT), contextlib.redirect_stdout(out):
        read_run(args)
    return out.getvalue()


@pytest.mark.parametrize("path", TRACES, ids=lambda p: str(p.relative_to(DATA)))
def test_mutated_trace_ends_in_a_result_or_a_typed_error(path: Path, tmp_path: Path) -> None:
    argv = read_argv(path, tmp_path)
    original = import_file(path).trace
    assert replay_read(argv, path)  # the trace itself reads
    base = FIRST_SEED + zlib.crc32(path.name.encode())
    failures, typed = [], 0
    mutant = tmp_path / "mutant.trace"
    for seed in range(base, base + MUTATIONS):
        trace, done = mutate(original, seed)
        mutant.write_text(trace_text(trace))
        try:
            replay_read(argv, mutant)
        except YikatongError:
            typed += 1
        except (Exception, Hang):
            failures.append(f"seed {seed} ({'; '.join(done)}):\n{traceback.format_exc()}")
    assert not failures, f"{len(failures)} of {MUTATIONS} mutants of {path.name}:\n" + "\n".join(
        failures[:5]
    )
    assert typed < MUTATIONS or MUTATIONS == 0


def test_a_dol_length_that_lies_is_a_typed_error_at_once(tmp_path: Path) -> None:
    """Found by this fuzz: PDOL 9F66 04 with its length byte flipped to 84 read as a 4-byte
    length, 2.6 GB, and the terminal built that much GPO data before refusing it."""
    path = DATA / "emv" / "qpboc-offline-decline.trace"
    trace = load_trace(path)
    (cmd, rsp), *rest = trace.exchanges
    assert b"\x9f\x66\x04" in rsp
    lying = Trace(trace.atr, [(cmd, rsp.replace(b"\x9f\x66\x04", b"\x9f\x66\x84", 1)), *rest])
    mutant = tmp_path / "lying-pdol.trace"
    mutant.write_text(trace_text(lying))
    start = time.monotonic()
    report = json.loads(replay_read(read_argv(path, tmp_path), mutant))
    (app,) = report["applications"]
    assert app["error"].startswith("DolError: malformed DOL")
    assert "exceeds 255" in app["error"] and time.monotonic() - start < 2


# -- recording the e-purse traces ------------------------------------------------------------


def record_epurse_traces() -> dict[str, str]:
    """``ykt read`` of T-Union cards from the software card, through the tracing reader."""
    from datetime import datetime

    from simulators.profiles import demo_card
    from terminal.emv.ca_keys import CaKeyStore
    from terminal.emv.config import TerminalConfig
    from terminal.readers.sim import SimReader
    from terminal.readers.tracing import TracingReader
    from terminal.roles.inspect import inspect_card
    from terminal.roles.session import TerminalSession
    from tests.traffic import JournaledTerminal

    def read(title: str, card: object) -> str:
        out = io.StringIO()
        writer = TraceWriter(out)
        writer.comment(title)
        writer.comment("recorded from a yikatong software card (TEST keys) through the tracing")
        writer.comment("reader; replay with tests/data/emv/terminal.json as terminal data")
        reader = TracingReader(SimReader(card), writer)
        config = TerminalConfig.from_file(TERMINAL_FILE)
        session = TerminalSession(reader)
        reader.connect()
        session.run(inspect_card(config, CaKeyStore.builtin()))
        return out.getvalue()

    used = demo_card(7, balance=10_000)
    clock_now = [datetime(2026, 11, 28, 8, 30, 15)]
    pos = JournaledTerminal("310000000001", ":memory:", lambda: clock_now[0])
    for amount in (150, 200, 1_250):
        pos.tap(used, amount)
    pos.close()
    return {
        "tunion-read.trace": read("ykt read of a new T-Union card (balance 50.00)", demo_card(1)),
        "tunion-read-with-log.trace": read(
            "ykt read of a T-Union card after three purchases (log records)", used
        ),
    }


if __name__ == "__main__":
    EPURSE.mkdir(exist_ok=True)
    for name, text in record_epurse_traces().items():
        (EPURSE / name).write_text(text)
