"""The hotlist: membership, versioned deltas, persistence, scale."""

import pytest

from terminal.hotlist import Hotlist, HotlistError


def s(n: int) -> bytes:
    return n.to_bytes(8, "big")


def test_deltas_in_order_and_persisted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = Hotlist(tmp_path / "h.db")
    h.apply(1, [s(5), s(2**64 - 1)])
    h.apply(2, [s(9)], [s(5)], from_version=1)
    assert s(9) in h and s(2**64 - 1) in h and s(5) not in h and len(h) == 2
    with pytest.raises(HotlistError, match="from version 1"):
        h.apply(3, [s(1)], from_version=1)
    with pytest.raises(HotlistError, match="not newer"):
        h.apply(2, [s(1)])
    h.close()
    again = Hotlist(tmp_path / "h.db")
    assert again.version == 2 and s(9) in again and s(5) not in again


def test_bad_serial_refused() -> None:
    with pytest.raises(HotlistError, match="8 bytes"):
        b"\x01" in Hotlist()  # noqa: B015


def test_half_a_million_entries(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = Hotlist(tmp_path / "h.db")
    h.replace_all(10, (s(n) for n in range(0, 1_000_000, 2)))
    assert len(h) == 500_000
    assert s(999_998) in h and s(999_999) not in h
    h.apply(11, [s(1)], [s(0)], from_version=10)
    assert s(1) in h and s(0) not in h and len(h) == 500_000
    assert h._keys.itemsize == 8  # 8 bytes per card: 4 MB for half a million
