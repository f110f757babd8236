"""`clawstream worker`: run the stream processors (one faust worker per process).

Start more processes with the same settings to share the partitions: they join the worker's
consumer groups (the event-time processor's `<app id>-windows` for the event topics; faust's,
the app id, for the other agents and the tables' changelogs) and the state moves with the
partitions (the event-time processor restores its partitions from their changelog).
"""

from __future__ import annotations

import logging

import click


@click.command("worker")
@click.option("--loglevel", default=None, help="Log level (default: CLAWSTREAM_LOG_LEVEL).")
@click.option("--logfile", type=click.Path(dir_okay=False), default=None,
              help="Write the log to this file instead of stderr.")
@click.option("--modules", default=None,
              help="Comma-separated stream modules to run (default: all of APP_MODULES).")
def worker(loglevel: str | None, logfile: str | None, modules: str | None) -> None:
    """Run windows, correlation, sessions (and the other stream modules) until stopped."""
    from faust.worker import Worker

    from clawstream.metrics import serve_metrics
    from clawstream.runtime import tune_gc
    from clawstream.settings import get_settings
    from streams.app import create_app, declare_changelogs

    settings = get_settings()
    level = (loglevel or settings.log_level).upper()
    serve_metrics(settings.worker_metrics_port, settings.metrics_host)
    selected = tuple(m.strip() for m in modules.split(",") if m.strip()) if modules else None
    app = create_app(settings, modules=selected)
    declare_changelogs(app, settings)
    click.echo(f"clawstream worker {settings.worker_app_id} on {settings.bootstrap_servers} "
               f"(modules: {', '.join(app.clawstream_modules)})", err=True)
    class QuietWorker(Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            # aiokafka debug records cost ~10 % of the worker's CPU even when not shown
            for noisy in ("aiokafka", "kafka", "faust.transport"):
                logging.getLogger(noisy).setLevel(max(logging.WARNING, level))

    tune_gc(settings.worker_gc_threshold)
    QuietWorker(app, loglevel=level, logfile=logfile, quiet=True).execute_from_commandline()
