"""The gateway's HTTP layer: one router per area, the dependencies they share, and the one
place refusals become HTTP statuses (``http``)."""
