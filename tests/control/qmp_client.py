"""A hand-written QMP client (socket + json, nothing else): what the control tests speak."""
import json
import socket
import time


class QmpError(Exception):
    pass


def eventually(probe, what, timeout=15, failure=AssertionError, interval=0.1):
    """probe()'s first true value within `timeout` seconds, else `failure` naming `what` and the last
    value (a test's polling of the monitor's figures)."""
    end = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > end:
            raise failure(f"{what} within {timeout} s (last: {got!r})")
        time.sleep(interval)


class Qmp:
    def __init__(self, path, timeout=10.0, negotiate=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self.next_id = 0
        self.greeting = self.read()
        if negotiate:
            reply = self.execute("qmp_capabilities")
            if reply != {"return": {}, "id": reply.get("id")}:
                raise QmpError(f"negotiation refused: {reply}")

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def read(self):
        """The next message (the server ends each with CRLF)."""
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QmpError("the monitor closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return json.loads(line)

    def reply(self, id_):
        """The reply with this id; events met on the way are kept."""
        while True:
            msg = self.read()
            if "event" in msg:
                self.events.append(msg)
            elif msg.get("id") == id_:
                return msg

    def execute(self, command, arguments=None, id_=None):
        if id_ is None:
            self.next_id += 1
            id_ = f"t{self.next_id}"
        req = {"execute": command, "id": id_}
        if arguments is not None:
            req["arguments"] = arguments
        self.send_raw(json.dumps(req))  # no newline: QMP is a JSON stream
        return self.reply(id_)

    def ok(self, command, arguments=None):
        r = self.execute(command, arguments)
        if "return" not in r:
            raise QmpError(f"{command} {arguments}: {r}")
        return r["return"]

    def wait_event(self, match, timeout=30.0):
        end = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if match(e):
                    return self.events.pop(i)
            if time.monotonic() > end:
                raise QmpError(f"no such event within {timeout} s; got {self.events}")
            old = self.sock.gettimeout()
            self.sock.settimeout(max(0.05, end - time.monotonic()))
            try:
                msg = self.read()
            except socket.timeout:
                continue
            finally:
                self.sock.settimeout(old)
            self.events.append(msg)
