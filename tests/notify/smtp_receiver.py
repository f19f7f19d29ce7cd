"""A real SMTP server (aiosmtpd) on loopback for tests/notify.rs.

Usage: smtp_receiver.py PORT OUT_DIR USER PASSWORD [CERT KEY]
Listens on 127.0.0.1:PORT and prints "ready" once it accepts connections. Requires AUTH with USER and
PASSWORD before MAIL; with CERT and KEY it also requires STARTTLS before AUTH. Each message
accepted is written to OUT_DIR as <n>.eml. Stops on SIGTERM or when stdin closes.
"""
import asyncio
import os
import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    port = int(sys.argv[1])
    out, user, password = sys.argv[2:5]
    cert = sys.argv[5:7]
    count = 0

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            nonlocal count
            count += 1
            with open(os.path.join(out, f"{count}.eml"), "wb") as f:
                f.write(b"X-Envelope-From: " + envelope.mail_from.encode() + b"\r\n")
                f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
                f.write(envelope.original_content)
            return "250 Message accepted"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok)

    kwargs = {}
    if cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert[0], cert[1])
        kwargs = {"tls_context": ctx, "require_starttls": True, "auth_require_tls": True}
    else:
        kwargs = {"auth_require_tls": False}
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator,
        auth_required=True, ready_timeout=10, **kwargs,
    )
    controller.start()
    print("ready", flush=True)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def on_stdin():
        if not sys.stdin.buffer.read1(1024):
            stop.set()

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), on_stdin)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
