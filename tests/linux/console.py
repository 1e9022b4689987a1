"""A small expect-style driver for a guest's serial console (Python 3 stdlib only).

    with Console(["disco", "run", ...], log_path="boot.log") as con:
        con.expect(r"disco-guest: ready", timeout=300)
        con.expect(PROMPT, timeout=30)
        out = con.command("nproc", PROMPT, timeout=30)
        con.sendline("poweroff")
        status = con.wait_exit(timeout=60)

The command runs in a session of its own, on a pseudo-terminal (default) or on pipes, with stderr
merged into the console stream. Everything it prints is appended to the log file as it arrives, so a
test killed from outside still leaves its transcript. Matching runs on a cleaned view of the output:
carriage returns and ANSI escape sequences (busybox ash's cursor queries, colours) are removed, so
patterns can use plain `\\n`. Any failure (timeout, early exit, a fail pattern such as "Kernel panic")
raises ConsoleError with the last output and kills the whole process group. The command also dies
with the driver: it gets SIGKILL if the driver dies (PR_SET_PDEATHSIG), and after
kill_consoles_on_signals() a SIGTERM/SIGINT/SIGHUP to the driver (meson's timeout) kills every live
console's process group before the driver exits.
"""
import codecs
import ctypes
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import tty
import weakref

TAIL_CHARS = 2000
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_live = weakref.WeakSet()  # consoles whose command may still run

# CSI sequences (ESC [ params final) and two-byte escapes (ESC x); a trailing partial escape is held
# back until the rest arrives so that a sequence split across reads is still removed.
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_PARTIAL_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*)?$")


class ConsoleError(Exception):
    """A console expectation failed; the message ends with the last output seen."""


class ConsoleTimeout(ConsoleError):
    """What was waited for did not come in time (the command was still running)."""


def _die_with_parent():
    """Runs in the child before exec: SIGKILL when the driver goes, however it goes."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def kill_consoles_on_signals():
    """SIGTERM, SIGINT and SIGHUP kill every live console's process group at once, then exit
    128+signal: the runner that sent them may SIGKILL the driver a moment later."""
    def handler(signum, _frame):
        for con in list(_live):
            con.kill(grace=0)
        sys.exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)


class Console:
    def __init__(self, argv, log_path=None, use_pty=True, env=None, fail_patterns=(), newline="\n"):
        self.argv = [str(a) for a in argv]
        self.newline = newline
        self.fail_patterns = [re.compile(p) for p in fail_patterns]
        self.text = ""  # cleaned output, what patterns match against
        self.pos = 0  # matching resumes here: the end of the last match
        self.start_time = time.monotonic()
        self._pending = ""  # a partial escape sequence held back from self.text
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._eof = False
        self._log = open(log_path, "ab", buffering=0) if log_path else None
        self._write_log(f"$ {' '.join(self.argv)}\n".encode())
        try:
            self._spawn(use_pty, env)
        except OSError as e:
            self._write_log(f"[console: cannot start the command: {e}]\n".encode())
            if self._log:
                self._log.close()
            raise ConsoleError(f"cannot start {self.argv[0]}: {e}") from None
        _live.add(self)

    # -- context manager: a failure inside the block kills the process group
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    @property
    def elapsed(self):
        """Seconds since the command was started."""
        return time.monotonic() - self.start_time

    def tail(self, chars=TAIL_CHARS):
        return self.text[-chars:]

    def expect(self, pattern, timeout):
        """Waits for `pattern` (a regex) in the output after the last match; returns the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.text, self.pos)
            if m:
                self.pos = m.end()
                return m
            if self._eof:
                status = self.proc.wait()
                self._fail(f"the command ended (status {status}) before {pattern!r} appeared")
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"timed out after {timeout} s waiting for {pattern!r}", ConsoleTimeout)
            self._read(left)

    def read_for(self, seconds):
        """Collects output for `seconds` (fail patterns still apply), or until the command's output
        ends; waits for nothing in particular, so nothing fails for lack of output."""
        deadline = time.monotonic() + seconds
        while not self._eof and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())

    def send(self, text):
        data = text.encode()
        while data:
            try:
                n = os.write(self._wfd, data)
            except OSError as e:
                self._fail(f"cannot write to the command: {e}")
            data = data[n:]

    def sendline(self, line):
        self.send(line + self.newline)

    def command(self, line, prompt, timeout):
        """Sends a shell command line and waits for the next prompt; returns the command's output
        (the text between the echoed line and the prompt, without the trailing newline). The line
        must fit on one terminal row (80 columns for busybox's shell on a serial console): a
        longer echo is wrapped, and its first newline is taken for the end of the echo."""
        self.sendline(line)
        echo_end = self.expect(r"\n", timeout)  # the end of the echoed command line
        # The prompt may begin with that very newline when the command prints nothing.
        self.pos = echo_end.start()
        m = self.expect(prompt, timeout)
        return self.text[echo_end.end():m.start()].rstrip("\n")

    def wait_exit(self, timeout):
        """Reads the rest of the output until the command exits; returns its status (negative: the
        signal that ended it). On timeout the process group is killed and ConsoleError raised."""
        deadline = time.monotonic() + timeout
        while not self._eof:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"the command did not exit within {timeout} s", ConsoleTimeout)
            self._read(left)
        try:
            return self.proc.wait(max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            self._fail(f"the command closed its output but did not exit within {timeout} s", ConsoleTimeout)

    def kill(self, grace=3):
        """Ends the whole process group: SIGTERM, then SIGKILL if it is still there after `grace`
        seconds (at once for grace=0). The group is signalled even when its leader has already
        exited, so that nothing the command started survives it."""
        steps = ((signal.SIGTERM, grace), (signal.SIGKILL, 5)) if grace > 0 else ((signal.SIGKILL, 5),)
        for sig, wait_s in steps:
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.proc.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                pass
        _live.discard(self)

    def close(self):
        if self._rfd is None:
            return
        self.kill()
        if self._rfd == self._wfd:  # the pty's master
            os.close(self._rfd)
        else:
            self.proc.stdin.close()
            self.proc.stdout.close()
        self._rfd = self._wfd = None
        if self._log:
            self._log.close()
            self._log = None

    # -- internals
    def _spawn(self, use_pty, env):
        if use_pty:
            master, slave = pty.openpty()
            try:
                # Raw: the host side of the terminal neither echoes nor translates; what the guest
                # sends is what we read, as with pipes.
                tty.setraw(slave)
                self.proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                             start_new_session=True, close_fds=True, preexec_fn=_die_with_parent)
            except OSError:
                os.close(master)
                raise
            finally:
                os.close(slave)
            self._rfd = self._wfd = master
        else:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True, bufsize=0,
                                         preexec_fn=_die_with_parent)
            self._rfd = self.proc.stdout.fileno()
            self._wfd = self.proc.stdin.fileno()

    def _write_log(self, data):
        if self._log:
            self._log.write(data)

    def _read(self, timeout):
        """Reads what is available within `timeout` seconds into self.text; sets _eof at the end."""
        ready, _, _ = select.select([self._rfd], [], [], max(timeout, 0))
        if not ready:
            return
        try:
            data = os.read(self._rfd, 65536)
        except OSError:  # EIO: every slave side of the pty is closed
            data = b""
        if not data:
            self._eof = True
            self._append(self._decoder.decode(b"", final=True), final=True)
            return
        self._write_log(data)
        self._append(self._decoder.decode(data))

    def _append(self, chunk, final=False):
        chunk = self._pending + chunk
        self._pending = ""
        if not final:
            m = _PARTIAL_ESCAPE.search(chunk)
            if m:
                self._pending = chunk[m.start():]
                chunk = chunk[:m.start()]
        before = len(self.text)
        self.text += _ESCAPE.sub("", chunk).replace("\r", "")
        # A fail pattern may straddle the old end; look back a little.
        for p in self.fail_patterns:
            if p.search(self.text, max(before - 200, 0)):
                self._drain(2.0)
                self._fail(f"the output shows {p.pattern!r}")

    def _dump_state(self):
        """A hung guest: SIGUSR1 makes the monitor print every vCPU's and device's state on stderr
        (vmm/monitor/signal_watch.hpp), which lands in the transcript and the failure's tail."""
        if self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGUSR1)
        except (ProcessLookupError, PermissionError):
            return
        self._drain(2.0)

    def _drain(self, seconds):
        """Collects output for a few more seconds, for context (a panic's backtrace)."""
        patterns, self.fail_patterns = self.fail_patterns, []
        deadline = time.monotonic() + seconds
        while not self._eof and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        self.fail_patterns = patterns

    def _fail(self, reason, error=ConsoleError):
        if error is ConsoleTimeout:
            self._dump_state()
        self.kill()
        self._write_log(f"\n[console: {reason}]\n".encode())
        raise error(f"{' '.join(self.argv[:1])}: {reason} ({self.elapsed:.1f} s after start); "
                           f"last output:\n{self.tail()}")
