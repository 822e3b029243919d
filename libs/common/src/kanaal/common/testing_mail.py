"""Pytest fixtures for the mail channel's real peers: a Dovecot IMAP server and an SMTP sink.

Loaded as a pytest plugin next to :mod:`kanaal.common.testing`. `dovecot` starts the
Debian `dovecot-imapd` on a free port with its own config and mail directory (no TLS,
plain login, users in a passwd-file); `smtp_sink` runs aiosmtpd in a thread and keeps
what it was sent. Mail goes in with IMAP APPEND, as a real mail server would deliver it.

A test asks for more with markers: `@pytest.mark.dovecot(imaps=True)` also serves IMAP over
TLS on `dovecot.imaps_port`, `@pytest.mark.dovecot(withhold=["MOVE"])` keeps capabilities
out of Dovecot's CAPABILITY answer, `@pytest.mark.smtp_sink(starttls=True)` makes the sink
require STARTTLS and `@pytest.mark.smtp_sink(tls=True)` makes it speak TLS from the first
byte (implicit TLS, as on port 465). The certificates come from `server_tls`: a throwaway CA
(the `openssl` command, which Dovecot depends on) and a certificate it signed for 127.0.0.1
and localhost. Dovecot logs every IMAP command it finished; `commands()` reads them back.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from kanaal.common.testing import free_port

DOVECOT = os.environ.get("KANAAL_TEST_DOVECOT", "dovecot")
OPENSSL = os.environ.get("KANAAL_TEST_OPENSSL", "openssl")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "dovecot(imaps=False, withhold=()): what the `dovecot` fixture serves"
    )
    config.addinivalue_line(
        "markers",
        "smtp_sink(starttls=False, tls=False): the sink requires STARTTLS, or speaks implicit TLS",
    )


@dataclass(frozen=True)
class ServerTls:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost (PEM)."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts only the throwaway CA, and checks the host name as any client would."""
        return ssl.create_default_context(cafile=self.ca_file)


def make_server_tls(directory: Path) -> ServerTls:
    """Write a new CA and a server certificate (EC P-256, valid two days) into `directory`."""
    if shutil.which(OPENSSL) is None:
        pytest.fail("openssl is not installed: apt-get install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_file = directory / "ca.key", directory / "ca.pem"
    key_file, request_file = directory / "server.key", directory / "server.csr"
    cert_file, extensions = directory / "server.pem", directory / "server.ext"
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(
        "req", "-x509", *new_key, "-keyout", ca_key, "-out", ca_file, "-days", "2",
        "-subj", "/CN=Kanaal test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl("req", "-new", *new_key, "-keyout", key_file, "-out", request_file,
             "-subj", "/CN=localhost")  # fmt: skip
    extensions.write_text(
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n",
        encoding="utf-8",
    )
    _openssl(
        "x509", "-req", "-in", request_file, "-CA", ca_file, "-CAkey", ca_key,
        "-CAcreateserial", "-days", "2", "-out", cert_file, "-extfile", extensions,
    )  # fmt: skip
    return ServerTls(ca_file, cert_file, key_file)


def _openssl(*args: str | Path) -> None:
    done = subprocess.run([OPENSSL, *map(str, args)], capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed:\n{done.stderr.decode(errors='replace')}")


@pytest.fixture
def server_tls(tmp_path: Path) -> ServerTls:
    """A fresh throwaway CA and server certificate in the test's tmp dir."""
    return make_server_tls(tmp_path / "tls")


def _mail_owner() -> tuple[str, str, int, int]:
    """Who Dovecot runs as and who owns the mail: Dovecot refuses to serve mail as root.

    As root, the login processes run as `dovenull`, the internal ones as `dovecot`, and the
    mail belongs to `nobody`; as anyone else, everything runs as the current user.
    """
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        return "dovenull", "dovecot", nobody.pw_uid, nobody.pw_gid
    me = pwd.getpwuid(os.geteuid())
    return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid


@dataclass
class DovecotServer:
    """A Dovecot of its own: `add_user`, `append`, `messages`, `stop`/`start` on the same port."""

    root: Path
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=dict)
    #: With a certificate, Dovecot also serves IMAP over TLS (imaps) on `imaps_port`.
    tls: ServerTls | None = None
    imaps_port: int | None = None
    #: Capabilities Dovecot leaves out of its CAPABILITY answer after login (e.g. MOVE).
    withheld_capabilities: tuple[str, ...] = ()
    _capabilities: str | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def commands(self) -> list[str]:
        """The IMAP commands Dovecot finished, oldest first, as logged (`UID SEARCH ALL`).

        Every client's: the helpers' own commands (SELECT, UID FETCH) are in it too.
        """
        return re.findall(r": Debug: Command finished: (.*?) *$", self.log(), flags=re.MULTILINE)

    def _write_config(self) -> None:
        login_user, internal_user, uid, gid = _mail_owner()
        if self.tls is None:
            ssl_settings, imaps = "ssl = no", "port = 0"
        elif self.imaps_port is None:
            raise ValueError("a Dovecot with a certificate needs an imaps_port")
        else:
            ssl_settings = f"ssl = yes\nssl_cert = <{self.tls.cert_file}\n"
            ssl_settings += f"ssl_key = <{self.tls.key_file}"
            imaps = f"address = {self.host}\n    port = {self.imaps_port}\n    ssl = yes"
        # Without a leading '+', imap_capability replaces Dovecot's own list.
        capability = f"imap_capability = {self._capabilities}" if self._capabilities else ""
        mail = self.root / "mail"
        mail.mkdir(exist_ok=True)
        os.chown(mail, uid, gid)
        (self.root / "users").touch()
        (self.root / "dovecot.conf").write_text(
            f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log_path}
# One debug line per finished IMAP command: what `commands()` reads.
log_debug = event=imap_command_finished
protocols = imap
listen = {self.host}
{ssl_settings}
{capability}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal_user).pw_gid).gr_name}
default_login_user = {login_user}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.root}/users
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    {imaps}
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
""",
            encoding="utf-8",
        )

    def start(self, timeout: float = 20.0) -> None:
        """Start Dovecot in the foreground and wait until it answers on its port."""
        if self.process is not None and self.process.poll() is None:
            return
        if self.withheld_capabilities and self._capabilities is None:
            # Dovecot's own list is compiled in (doveconf shows it empty): ask a running one.
            self._launch(timeout)
            try:
                self._capabilities = self._capabilities_without(self.withheld_capabilities)
            finally:
                self.stop()
        self._launch(timeout)

    def _capabilities_without(self, withheld: tuple[str, ...]) -> str:
        probe = "capability-probe@localhost"
        if probe not in self.users:
            self.add_user(probe, "probe")
        with self.imap(probe) as client:
            _, data = client.capability()
        leave_out = {name.upper() for name in withheld}
        return " ".join(c for c in data[0].decode().split() if c.upper() not in leave_out)

    def _launch(self, timeout: float) -> None:
        self._write_config()
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.process.returncode}:\n{self.log()}")
            try:
                imaplib.IMAP4(self.host, self.port, timeout=2).shutdown()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        """Stop Dovecot and every process it started (connected clients see the line drop)."""
        if self.process is None or self.process.poll() is not None:
            return
        # Dovecot's imap processes notice a stopped master only after ~10 s; end them with it,
        # so that clients see the connection drop as they would when a server goes down.
        children = _children(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def add_user(self, user: str, password: str) -> None:
        """Add a mail account; Dovecot rereads the passwd-file when it changes."""
        _, _, uid, gid = _mail_owner()
        home = self.root / "mail" / user
        self.users[user] = password
        with (self.root / "users").open("a", encoding="utf-8") as users:
            users.write(f"{user}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n")

    @contextlib.contextmanager
    def imap(self, user: str) -> Iterator[imaplib.IMAP4]:
        """A logged-in stdlib IMAP client for test setup and checks."""
        client = imaplib.IMAP4(self.host, self.port, timeout=30)
        try:
            client.login(user, self.users[user])
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, user: str, *mails: bytes, folder: str = "INBOX") -> None:
        """Deliver mails into `folder` with IMAP APPEND."""
        with self.imap(user) as client:
            if folder != "INBOX":
                client.create(folder)
            for raw in mails:
                status, data = client.append(folder, None, None, raw)
                if status != "OK":
                    raise RuntimeError(f"APPEND failed: {data!r}")

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The raw mails in `folder` (empty when the folder does not exist), by UID."""
        with self.imap(user) as client:
            status, _ = client.select(_quote(folder), readonly=True)
            if status != "OK":
                return []
            status, data = client.uid("fetch", "1:*", "(BODY.PEEK[])")
            return [item[1] for item in data if isinstance(item, tuple)]

    def folders(self, user: str) -> list[str]:
        with self.imap(user) as client:
            _, data = client.list()
        names = []
        for line in data:
            if isinstance(line, bytes):
                match = re.search(rb'"/" "?([^"]*)"?$', line)
                if match:
                    names.append(match.group(1).decode())
        return names


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _quote(folder: str) -> str:
    return f'"{folder}"'


@pytest.fixture
def dovecot(request: pytest.FixtureRequest) -> Iterator[DovecotServer]:
    """A fresh Dovecot on a free port with its own mail directory, stopped after the test.

    Plain IMAP only, unless the test is marked `dovecot(imaps=True)` and/or
    `dovecot(withhold=[...])`.
    """
    if shutil.which(DOVECOT) is None:
        pytest.fail("dovecot is not installed: apt-get install dovecot-imapd (see .ci/run)")
    marker = request.node.get_closest_marker("dovecot")
    options = dict(marker.kwargs) if marker else {}
    imaps = bool(options.pop("imaps", False))
    withhold = tuple(options.pop("withhold", ()))
    if options:
        pytest.fail(f"unknown dovecot marker options: {sorted(options)}")
    # Not under pytest's tmp_path: Dovecot's unprivileged processes must reach the mail.
    root = Path(tempfile.mkdtemp(prefix="kanaal-dovecot-"))
    root.chmod(0o755)
    server = DovecotServer(root=root, port=free_port(), withheld_capabilities=withhold)
    if imaps:
        server.tls = request.getfixturevalue("server_tls")
        server.imaps_port = free_port()
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class SentMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    #: The TLS version of the session that delivered the mail (e.g. "TLSv1.3"); None if plain.
    tls_version: str | None = None

    @property
    def message(self) -> EmailMessage:
        parsed: EmailMessage = message_from_bytes(self.data, policy=policy.default)
        return parsed


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) that keeps every mail; it can be told to refuse."""

    host: str
    port: int
    #: With a certificate, the sink offers and requires STARTTLS, or with `implicit_tls`
    #: speaks TLS from the first byte (SMTPS, RFC 8314) and offers no STARTTLS.
    tls: ServerTls | None = None
    implicit_tls: bool = False
    received: list[SentMail] = field(default_factory=list)
    #: Recipients answered with `550 no such user` (a permanent failure).
    refuse: set[str] = field(default_factory=set)
    #: While > 0, that many DATA commands are answered with `451` (a temporary failure).
    fail_temporarily: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._arrived:
            if self.fail_temporarily > 0:
                self.fail_temporarily -= 1
                return "451 4.3.0 try again later"
            # After STARTTLS too, the server's transport is the TLS one.
            tls = server.transport.get_extra_info("ssl_object")
            self.received.append(
                SentMail(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    bytes(envelope.content),
                    tls.version() if tls is not None else None,
                )
            )
            self._arrived.notify_all()
        return "250 Message accepted"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[SentMail]:
        """Wait until `count` mails arrived (or the timeout passed); returns what arrived."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


@pytest.fixture
def smtp_sink(request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    """An aiosmtpd SMTP server on a free port, in a thread, stopped after the test.

    Plain SMTP, unless the test is marked `smtp_sink(starttls=True)` or `smtp_sink(tls=True)`.
    """
    controller_module = pytest.importorskip("aiosmtpd.controller")
    marker = request.node.get_closest_marker("smtp_sink")
    options = dict(marker.kwargs) if marker else {}
    starttls = bool(options.pop("starttls", False))
    implicit_tls = bool(options.pop("tls", False))
    if options:
        pytest.fail(f"unknown smtp_sink marker options: {sorted(options)}")
    if starttls and implicit_tls:
        pytest.fail("smtp_sink: starttls=True and tls=True exclude each other")
    sink = SmtpSink("127.0.0.1", free_port(), implicit_tls=implicit_tls)
    tls_options: dict[str, Any] = {}
    if starttls:
        sink.tls = request.getfixturevalue("server_tls")
        tls_options = {"tls_context": sink.tls.server_context(), "require_starttls": True}
    elif implicit_tls:
        sink.tls = request.getfixturevalue("server_tls")
        # The Controller hands ssl_context to loop.create_server: TLS before the greeting.
        tls_options = {"ssl_context": sink.tls.server_context()}
    controller = controller_module.Controller(
        sink, hostname=sink.host, port=sink.port, **tls_options
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
