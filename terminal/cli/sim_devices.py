"""Software devices for ``sim`` readers, handed to the runtime's assembly (terminal code never
imports the simulators; the CLI does, lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SoftwareDevices:
    """The software PSAM kept in a state file, and software cards (files or demo cards)."""

    def psam(self, state_path: str, terminal_id: str) -> tuple[Any, int]:
        from simulators.campus import campus_psam
        from simulators.psam import SoftPsam

        if Path(state_path).exists():
            psam = SoftPsam.load(state_path)
        else:  # a demo PSAM that also holds the campus master (a door authenticates cards)
            psam = campus_psam(terminal_id)
            psam.save(state_path)
        return psam, psam.state.terminal_seq

    def cards(self, files: list[str], count: int, *, campus: bool = False) -> list[Any]:
        from simulators.campus import campus_card
        from simulators.files import load_device
        from simulators.profiles import demo_card

        if files:
            return [load_device(path) for path in files]
        if campus:
            return [campus_card(i + 1, f"S{i + 1:04d}", balance=2_000) for i in range(count)]
        return [demo_card(i + 1, balance=2_000) for i in range(count)]
