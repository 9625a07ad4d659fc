"""Local hotlist of blocked cards (挂失), versioned, with fast membership."""

from terminal.hotlist.hotlist import Hotlist, HotlistError

__all__ = ["Hotlist", "HotlistError"]
