"""The worker's faust App: faust's `App` with what clawstream keeps on it.

A module of its own so that importing `streams.app` (for `input_group`, say) does not load
faust; `streams.app.create_app` imports it when it builds the worker."""

from __future__ import annotations

import faust

from clawstream.settings import Settings


class WorkerApp(faust.App):
    """The stream worker's app: its settings, and the stream modules registered on it."""

    clawstream_settings: Settings
    clawstream_modules: tuple[str, ...] = ()
