"""PSAM driver: start-up, MAC1 (80 70), MAC2 check (80 72), generic DES INIT / MAC."""

from terminal.sam.psam import Mac1, SamInfo, startup

__all__ = ["Mac1", "SamInfo", "startup"]
