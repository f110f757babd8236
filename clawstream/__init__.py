"""clawstream: the event pipeline for fleets of GUI-automation agents."""

__version__ = "0.1.0"
