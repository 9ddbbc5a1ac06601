"""A real SMTP server for rai-keygen mail's tests: aiosmtpd on loopback, saving what it receives.

    python smtp_sink.py --dir DIR [--cert PEM --key PEM] [--user NAME --password PW]

Each message is written to DIR/<n>.json as {"mail_from", "rcpt_tos", "data", "auth"} once the server has accepted
it. With --cert/--key the server offers STARTTLS and requires it before MAIL; with --user/--password it requires
AUTH (PLAIN or LOGIN, only after STARTTLS). It prints "listening PORT" when ready and runs until killed.
"""

import argparse
import json
import os
import socket
import ssl
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "auth": session.authenticated,
            "tls": session.ssl is not None,
        }
        tmp = os.path.join(self.directory, f".{self.count}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, f"{self.count}.json"))
        return "250 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()
    kwargs = {}
    if a.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)
        kwargs.update(tls_context=context, require_starttls=True)
    if a.user:
        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == a.user \
                and auth_data.password.decode() == a.password
            return AuthResult(success=ok)
        kwargs.update(authenticator=authenticate, auth_required=True, auth_require_tls=bool(a.cert))
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    controller = Controller(Sink(a.dir), hostname="127.0.0.1", port=port, server_hostname="localhost", **kwargs)
    controller.start()
    print(f"listening {controller.port}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
