"""``ykt sim qr`` writes a code and its image; ``ykt qr verify`` prints fields and verdict."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.cli_kit import ykt

AT = "2026-11-28T08:30:15+08:00"


def _make(tmp_path: Path, *extra: str) -> tuple[Path, str]:
    out = tmp_path / "code.bin"
    r = ykt("sim", "qr", "--out", str(out), "--png", str(tmp_path / "code.png"), "--at", AT, *extra)
    key = r.stdout.split("root key ")[1].split()[0]
    return out, key


def test_a_fresh_code_verifies_raw_and_base64_and_its_png_decodes(tmp_path: Path) -> None:
    out, key = _make(tmp_path, "--account", "42", "--limit", "300")
    r = ykt("qr", "verify", str(out), "--root-key", key, "--at", "2026-11-28T08:30:40+08:00")
    assert "verdict: ACCEPTED" in r.stdout
    assert "0000000000000000002A" in r.stdout and "¥3.00" in r.stdout
    b64 = tmp_path / "code.txt"
    b64.write_text(base64.b64encode(out.read_bytes()).decode() + "\n")
    keys = tmp_path / "roots.txt"
    keys.write_text(f"# test root CA\n{key}\n")
    r = ykt("qr", "verify", str(b64), "--root-keys", str(keys), "--at", AT, "--json")
    doc = json.loads(r.stdout)
    assert (doc["verdict"], doc["fields"]["ride_limit"]) == ("accepted", 300)
    import zxingcpp
    from PIL import Image

    (found,) = zxingcpp.read_barcodes(Image.open(tmp_path / "code.png"))
    assert found.bytes == out.read_bytes()


def test_refusals_exit_non_zero_with_the_reason(tmp_path: Path) -> None:
    out, key = _make(tmp_path)
    late = ykt(
        "qr",
        "verify",
        str(out),
        "--root-key",
        key,
        "--at",
        "2026-11-28T08:31:16+08:00",
        check=False,
    )
    assert late.returncode == 1
    assert "code-expired" in late.stderr and "verdict: REFUSED (code-expired" in late.stdout
    other = "02:" + key.split(":")[1]
    r = ykt("qr", "verify", str(out), "--root-key", other, "--at", AT, check=False)
    assert (r.returncode, "unknown-root-key" in r.stderr) == (1, True)
    data = bytearray(out.read_bytes())
    data[150] ^= 1  # platform code: the issuer's signature no longer covers it
    out.write_bytes(bytes(data))
    r = ykt("qr", "verify", str(out), "--root-key", key, "--at", AT, check=False)
    assert (r.returncode, "issuer-signature" in r.stderr) == (1, True)
    bad = tmp_path / "keys.txt"
    bad.write_text("01:ABCD\n")
    r = ykt("qr", "verify", str(out), "--root-keys", str(bad), check=False)
    assert r.returncode == 1 and f"{bad}:1:" in r.stderr
