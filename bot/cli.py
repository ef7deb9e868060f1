"""The `opsgate` command line: serve, worker, database, configuration check and audit tools.

Exit codes: 0 success, 1 a check failed (e.g. the audit chain is broken), 2 bad configuration
or usage. Errors name the file, key or option at fault; no tracebacks for expected problems.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import ValidationError

from bot.config.env import Settings
from bot.logs import configure_logging

if TYPE_CHECKING:
    from bot.config.opsgate import OpsgateConfig
    from bot.db.digest_files import DigestReading

# Heavier modules (the configuration models, aiohttp, SQLAlchemy) are imported by the commands
# that need them, so `opsgate --help` or `opsgate audit verify` start quickly.

__all__ = ["main"]

T = TypeVar("T")
log = logging.getLogger("opsgate")


class CliContext:
    def __init__(self, config_path: Path | None, allow_unset: bool = False) -> None:
        self._config_path = config_path
        self._allow_unset = allow_unset
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings()
            except ValidationError as exc:
                for error in exc.errors():
                    field = ".".join(str(p) for p in error["loc"]).upper()
                    click.echo(f"environment: {field}: {error['msg']}", err=True)
                raise SystemExit(2) from None
            if self._config_path is not None:
                self._settings.opsgate_config = self._config_path
        return self._settings

    def config(self, *, allow_unset: bool = False) -> OpsgateConfig:
        from bot.config.opsgate import ConfigError, load_config

        try:
            return load_config(self.settings.opsgate_config, allow_unset=allow_unset or self._allow_unset)
        except ConfigError as exc:
            click.echo(str(exc), err=True)
            raise SystemExit(2) from None


pass_ctx = click.make_pass_decorator(CliContext)


def run(coro_factory: Callable[[], Awaitable[T]]) -> T:
    async def runner() -> T:
        return await coro_factory()

    return asyncio.run(runner())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="YAML configuration (default: $OPSGATE_CONFIG or ./opsgate.yaml).",
)
@click.option(
    "--allow-unset",
    is_flag=True,
    envvar="OPSGATE_ALLOW_UNSET",
    help="Accept ${VAR} references whose variable is not set (local trials; never in production).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, allow_unset: bool) -> None:
    """opsgate: governed promotions, credential rotations and asset releases from Slack."""
    ctx.obj = CliContext(config_path, allow_unset)


# ------------------------------------------------------------------ check


@main.command()
@click.option("--allow-unset", is_flag=True, help="Accept ${VAR} references whose variable is not set.")
@pass_ctx
def check(cli: CliContext, allow_unset: bool) -> None:
    """Validate settings and the YAML configuration; exit 2 naming the key at fault."""
    settings = cli.settings
    config = cli.config(allow_unset=allow_unset)
    click.echo(f"config: {settings.opsgate_config} is valid")
    click.echo(f"  environments: {', '.join(config.environments)}")
    click.echo(f"  solutions:    {', '.join(s.name for s in config.solutions) or '(none)'}")
    click.echo(f"  policies:     {len(config.policies)} ({', '.join(p.name for p in config.policies)})")
    from commands.rotate import credential_config_problems

    problems = credential_config_problems(config)
    if problems:
        for problem in problems:
            click.echo(f"{settings.opsgate_config}: {problem}", err=True)
        raise SystemExit(2)
    warnings = []
    if not config.policies:
        warnings.append("no policies: every change will be denied (fail closed)")
    if settings.slack_signing_secret is None:
        warnings.append("SLACK_SIGNING_SECRET is not set: /slack/events will refuse every request")
    if settings.opsgate_secret_key is None:
        warnings.append(
            f"OPSGATE_SECRET_KEY is not set: using the key file {settings.opsgate_secret_key_file}"
        )
    for warning in warnings:
        click.echo(f"warning: {warning}")


@main.command()
@click.option(
    "--audit-signing", is_flag=True, help="An Ed25519 key that signs audit digests, instead of a Fernet key."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With --audit-signing: write the private key (PEM, mode 0600) to FILE instead of printing it.",
)
def keygen(audit_signing: bool, output: Path | None) -> None:
    """Print a new OPSGATE_SECRET_KEY (Fernet key), or with --audit-signing a digest signing key."""
    if not audit_signing:
        if output is not None:
            raise click.UsageError("--output goes with --audit-signing")
        from cryptography.fernet import Fernet

        click.echo(Fernet.generate_key().decode())
        return
    import base64
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bot.domain.audit_digest import key_id_of, public_key_pem

    key = Ed25519PrivateKey.generate()
    public = public_key_pem(key.public_key())
    if output is None:
        raw = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        click.echo(base64.b64encode(raw).decode())  # the value of OPSGATE_AUDIT_SIGNING_KEY
        click.echo(f"key id: {key_id_of(key.public_key())}; public key:\n{public}", err=True, nl=False)
        return
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        click.echo(f"{output} exists: a signing key is never overwritten", err=True)
        raise SystemExit(2) from None
    except OSError as exc:
        click.echo(f"cannot write {output}: {exc.strerror or exc}", err=True)
        raise SystemExit(2) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    click.echo(f"wrote {output}: set OPSGATE_AUDIT_SIGNING_KEY_FILE={output}", err=True)
    click.echo(f"key id: {key_id_of(key.public_key())}", err=True)
    click.echo(public, nl=False)


# ------------------------------------------------------------------ database


@main.group()
def db() -> None:
    """Database schema management (Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_ctx
def db_upgrade(cli: CliContext, revision: str) -> None:
    """Bring the schema to REVISION (run on release, before new processes start)."""
    from bot.db.migrate import upgrade

    upgrade(cli.settings.database_url, revision)
    click.echo(f"database upgraded to {revision}")


@db.command("downgrade")
@click.argument("revision")
@pass_ctx
def db_downgrade(cli: CliContext, revision: str) -> None:
    """Step the schema back to REVISION ("base" removes everything)."""
    from bot.db.migrate import downgrade

    downgrade(cli.settings.database_url, revision)
    click.echo(f"database downgraded to {revision}")


@db.command("current")
@pass_ctx
def db_current(cli: CliContext) -> None:
    """Show the schema revision of the database and of this code."""
    from bot.db.engine import create_engine
    from bot.db.migrate import current_revision, head_revision

    async def go() -> str | None:
        engine = create_engine(cli.settings.database_url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    current = run(go)
    head = head_revision()
    click.echo(
        f"database: {current or '(empty)'}; code: {head}{'' if current == head else ' (upgrade needed)'}"
    )


# ------------------------------------------------------------------ audit


@main.group()
def audit() -> None:
    """Verify and export the tamper-evident audit trail."""


@audit.command("verify")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="Ranges verified side by side (default: one per CPU; trails under 100,000 events use one).",
)
@click.option(
    "--digests",
    "digest_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Also check every signed digest in DIR against the trail (truncation, wipe, rewrites).",
)
@click.option(
    "--public-key",
    "public_keys",
    type=click.Path(path_type=Path, dir_okay=False),
    multiple=True,
    help="Trust only this public key (PEM), repeatable; default: the public-key-*.pem files in DIR.",
)
@pass_ctx
def audit_verify(
    cli: CliContext, processes: int | None, digest_dir: Path | None, public_keys: tuple[Path, ...]
) -> None:
    """Recompute the hash chain and check the digests; exit 1 with one line per finding, 2 when
    the trail, the digests or a key cannot be read at all."""
    import os
    import time

    from bot.db.audit_log import AuditTrailUnreadable, verify_trail

    if public_keys and digest_dir is None:
        raise click.UsageError("--public-key goes with --digests")
    started = time.perf_counter()
    reading = _read_digests(digest_dir, public_keys) if digest_dir is not None else None
    try:
        result = verify_trail(
            cli.settings.database_url,
            processes=processes or os.cpu_count() or 1,
            digests=reading.files if reading else None,
            keys=reading.keys if reading else None,
        )
    except AuditTrailUnreadable as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
    problems = result.problems() + [str(p) for p in (reading.problems if reading else [])]
    if problems:
        for line in problems:
            click.echo(line, err=True)
        raise SystemExit(1)
    elapsed = time.perf_counter() - started
    rate = f" ({result.count / elapsed:,.0f} events/s)" if result.count and elapsed > 0 else ""
    click.echo(f"audit chain intact: {result.count} events verified in {elapsed:.2f} s{rate}")
    if reading is not None and result.digests:
        newest = result.digests[-1]
        since = (result.head_seq or 0) - newest.last_seq
        trusted = "" if public_keys else f"; keys read from {digest_dir} (pin them with --public-key)"
        click.echo(
            f"audit digests intact: {len(result.digests)} digests match the trail; the newest, "
            f"{newest.describe()}, anchors event {newest.last_seq} ({since} events since){trusted}"
        )
    elif reading is not None:
        click.echo(f"audit digests: none in {digest_dir} yet, and the trail is empty")


def _read_digests(digest_dir: Path, public_keys: tuple[Path, ...]) -> DigestReading:
    """The digests and trusted keys, read before the trail (a newer digest could name events the
    trail's snapshot does not hold); exit 2 naming the directory or key that cannot be read."""
    from bot.db.digest_files import DigestDirectory, DigestDirectoryError
    from bot.domain.audit_digest import DigestKeyError, key_id_of, load_public_key

    try:
        reading = DigestDirectory(digest_dir).read()
    except DigestDirectoryError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
    if public_keys:
        reading.keys = {}
        for path in public_keys:
            try:
                key = load_public_key(path.read_bytes())
            except OSError as exc:
                click.echo(f"--public-key {path}: {exc.strerror or exc}", err=True)
                raise SystemExit(2) from None
            except DigestKeyError as exc:
                click.echo(f"--public-key {path}: {exc}", err=True)
                raise SystemExit(2) from None
            reading.keys[key_id_of(key)] = key
    return reading


@audit.command("public-key")
@pass_ctx
def audit_public_key(cli: CliContext) -> None:
    """Print the public key of the audit signing key (PEM), to verify digests elsewhere."""
    from bot.config.audit_signing import resolve_audit_signing_key
    from bot.domain.audit_digest import DigestKeyError, key_id_of, public_key_pem

    try:
        public = resolve_audit_signing_key(cli.settings).public_key()
    except DigestKeyError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
    click.echo(f"key id: {key_id_of(public)}", err=True)
    click.echo(public_key_pem(public), nl=False)


@audit.command("digest")
@pass_ctx
def audit_digest(cli: CliContext) -> None:
    """Sign the head now and write it to OPSGATE_AUDIT_DIGEST_DIR (e.g. from a host that holds the
    key and only reads the database); exit 1 if it cannot be written or the trail has changed."""
    settings = cli.settings
    if settings.opsgate_audit_digest_dir is None:
        click.echo("OPSGATE_AUDIT_DIGEST_DIR is not set: nowhere to write the digest", err=True)
        raise SystemExit(2)
    from bot.db.audit_log import AuditTrailUnreadable, require_database
    from bot.db.engine import create_engine
    from bot.domain.requests import system_clock
    from bot.jobs.audit_digests import DigestFailed, DigestWritten, audit_digest_duty
    from bot.jobs.outbox import Outbox

    try:
        require_database(settings.database_url)
    except AuditTrailUnreadable as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None

    async def go() -> DigestWritten | DigestFailed:
        from bot.db.engine import create_session_factory

        engine = create_engine(settings.database_url)

        async def no_alert(event: Any) -> None:  # the command prints what an alert would say
            return None

        try:
            duty = audit_digest_duty(settings, engine=engine, sessions=create_session_factory(engine),
                                     outbox=Outbox(system_clock), clock=system_clock, alert=no_alert,
                                     wake=lambda: None)  # fmt: skip
            assert duty is not None
            return await duty.run()
        finally:
            await engine.dispose()

    outcome = run(go)
    if isinstance(outcome, DigestFailed):
        click.echo(f"audit digest not written: {outcome.reason}", err=True)
        raise SystemExit(1)
    click.echo(f"wrote {outcome.path}: digest {outcome.digest.digest_seq}, event {outcome.digest.last_seq}")
    for line in [*outcome.tampering, *outcome.publish_failures]:
        click.echo(line, err=True)
    if outcome.tampering or outcome.publish_failures:
        raise SystemExit(1)


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option(
    "--output", "-o", type=click.Path(path_type=Path, dir_okay=False), help="File to write (default stdout)."
)
@click.option("--request", "request_ref", help="Only events of one request, e.g. PRM-42.")
@click.option("--subject", help="Only events about one subject, e.g. promotion:orders-api@prod.")
@click.option("--asset", help="Only one iconik asset's media history (the subject asset:<id>).")
@pass_ctx
def audit_export(
    cli: CliContext,
    fmt: str,
    output: Path | None,
    request_ref: str | None,
    subject: str | None,
    asset: str | None,
) -> None:
    """Stream events for a compliance review, with their hashes so the export can be re-verified."""
    from bot.db.audit_log import export_events
    from bot.media_audit import MEDIA_SUBJECT_PREFIX

    if asset is not None:
        if subject is not None:
            raise click.UsageError("give --asset or --subject, not both")
        subject = f"{MEDIA_SUBJECT_PREFIX}{asset}"

    from bot.db.engine import create_engine

    async def go() -> int:
        engine = create_engine(cli.settings.database_url)
        count = 0
        handle = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            async for line in export_events(engine, fmt=fmt, request_ref=request_ref, subject=subject):
                handle.write(line)
                count += 1
        finally:
            if output:
                handle.close()
            await engine.dispose()
        return count

    count = run(go)
    if output:
        click.echo(f"wrote {count - (1 if fmt == 'csv' else 0)} events to {output}", err=True)


# ------------------------------------------------------------------ processes


async def _serve(settings: Settings, config: OpsgateConfig, *, with_worker: bool, socket_mode: bool) -> None:
    from aiohttp import web

    from bot.web.socket_mode import SocketModeRunner, SocketModeStartError
    from bot.wiring.root import wire
    from bot.wiring.runtime import freeze_startup_heap
    from bot.wiring.service import build_service

    service = await build_service(settings, config)
    wiring = await wire(service, settings, config)
    runner = web.AppRunner(service.web, handle_signals=False, shutdown_timeout=5.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    # --no-worker: this process only answers Slack and HTTP; workers run jobs, delivery, schedules.
    service.runtime.start_loops(with_scheduler=with_worker, with_jobs=with_worker)
    freeze_startup_heap()
    socket: SocketModeRunner | None = None
    if socket_mode:
        if settings.slack_app_token is None:
            raise click.UsageError("Socket Mode needs SLACK_APP_TOKEN (an xapp- token).")
        socket = SocketModeRunner(service.bolt, settings.slack_app_token.get_secret_value())
        try:
            await socket.start()
        except SocketModeStartError as exc:
            await runner.cleanup()
            await service.stop(timeout=1.0)
            raise click.ClickException(str(exc)) from None
    log.info("opsgate serving", extra={"host": settings.host, "port": settings.port, "worker": with_worker,
                                       "socket_mode": socket_mode})  # fmt: skip
    click.echo(f"opsgate listening on http://{settings.host}:{settings.port} (Ctrl-C to stop)", err=True)
    await _wait_for_stop_signal()
    log.info("shutting down")
    if socket:
        await socket.stop()
    # Stop accepting, let in-flight acknowledgements finish, then stop loops; unfinished jobs keep
    # their lease and are claimed again by the next process.
    await runner.cleanup()
    await service.stop(timeout=3.0)
    await wiring.aclose()


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@main.command()
@click.option("--port", type=int, help="Port to listen on (default $PORT or 3000).")
@click.option("--host", help="Address to bind (default $OPSGATE_HOST or 0.0.0.0).")
@click.option("--socket", "socket_mode", is_flag=True, help="Use Slack Socket Mode instead of HTTP.")
@click.option(
    "--worker/--no-worker",
    "with_worker",
    default=None,
    help="Also run jobs, outbox delivery and the scheduler here (default: on with SQLite, off with PostgreSQL).",
)
@pass_ctx
def serve(
    cli: CliContext, port: int | None, host: str | None, socket_mode: bool, with_worker: bool | None
) -> None:
    """Run the HTTP server: /slack/events, /healthz, /metrics."""
    settings = cli.settings
    if port:
        settings.port = port
    if host:
        settings.host = host
    config = cli.config()
    configure_logging(settings.log_level, settings.log_format)
    socket_mode = socket_mode or settings.slack_app_token is not None
    worker_in_process = settings.is_sqlite if with_worker is None else with_worker
    run(lambda: _serve(settings, config, with_worker=worker_in_process, socket_mode=socket_mode))


@main.command()
@pass_ctx
def worker(cli: CliContext) -> None:
    """Run jobs, outbox delivery and the scheduler without serving HTTP."""
    settings = cli.settings
    config = cli.config()
    configure_logging(settings.log_level, settings.log_format)

    async def go() -> None:
        from bot.wiring.root import wire
        from bot.wiring.runtime import freeze_startup_heap
        from bot.wiring.service import build_service

        service = await build_service(settings, config)
        wiring = await wire(service, settings, config)
        service.runtime.start_loops(with_scheduler=True)
        freeze_startup_heap()
        click.echo("opsgate worker running (Ctrl-C to stop)", err=True)
        await _wait_for_stop_signal()
        await service.stop(timeout=8.0)
        await wiring.aclose()

    run(go)


@main.command()
@click.option("--port", type=int, default=3000, show_default=True, help="Port of the web console.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("./opsgate-demo"),
    show_default=True,
    help="Where the demo keeps its SQLite database.",
)
def demo(port: int, host: str, data_dir: Path) -> None:
    """Run the whole system on this machine with a Slack-like web console at http://HOST:PORT/."""
    from bot.demo import run_demo

    configure_logging("WARNING", "console")
    data_dir.mkdir(parents=True, exist_ok=True)
    run(lambda: run_demo(port=port, host=host, data_dir=data_dir))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=0, help="First port; vendors take consecutive ports (0: any free).")
def emulators(host: str, port: int) -> None:
    """Start the vendor emulators (OpenText, Canto, iconik, Confluence) and print their URLs."""
    from connectors.emulators import serve_all

    async def go() -> None:
        started = await serve_all(host, port)
        for name, url in started.urls.items():
            click.echo(f"{name:<11} {url}")
        await _wait_for_stop_signal()
        await started.close()

    run(go)


if __name__ == "__main__":  # pragma: no cover
    main()
