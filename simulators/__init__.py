"""Software cards, software PSAM, and (later) the clearing service: everything runs without
hardware. Never imported by terminal/ or gateway/ outside tests, the demo and the ``sim``
reader."""
