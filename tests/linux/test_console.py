#!/usr/bin/env python3
"""Checks console.py, the driver the Linux guest tests use, on /bin/sh: matching, sending lines,
exit status, timeouts that report the last output, fail patterns, escape-sequence cleaning, and that
a failure kills the whole process group. Each check runs on a pseudo-terminal and on pipes."""
import os
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from console import Console, ConsoleError, ConsoleTimeout  # noqa: E402


def is_running(pid):
    """False once the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class ConsoleTest:
    use_pty = True

    def spawn(self, script, **kw):
        return Console(["sh", "-c", script], use_pty=self.use_pty, **kw)

    def test_expect_send_and_exit_status(self):
        with self.spawn('echo ready; read x; echo "got:$x"; exit 3') as con:
            con.expect(r"ready\n", 10)
            con.sendline("hello")
            self.assertEqual(con.expect(r"got:(\w+)", 10).group(1), "hello")
            self.assertEqual(con.wait_exit(10), 3)

    def test_command_returns_output_between_echo_and_prompt(self):
        # The shell echoes the line itself (a pty in raw mode does not), as a guest's shell does.
        script = 'printf "# "; while read l; do echo "$l"; eval "$l"; printf "# "; done'
        with self.spawn(script) as con:
            con.expect(r"# ", 10)
            self.assertEqual(con.command("echo $((6*7))", r"\n# ", 10), "42")
            self.assertEqual(con.command("echo a; echo b", r"\n# ", 10), "a\nb")
            self.assertEqual(con.command("true", r"\n# ", 10), "")  # the prompt follows the echo
            self.assertEqual(con.command("echo after", r"\n# ", 10), "after")

    def test_timeout_reports_the_last_output_and_kills(self):
        with self.spawn("echo some-output-before; sleep 60") as con:
            start = time.monotonic()
            with self.assertRaises(ConsoleTimeout) as cm:
                con.expect(r"never", 0.5)
            self.assertLess(time.monotonic() - start, 10)
            self.assertIn("some-output-before", str(cm.exception))
            self.assertIn("timed out", str(cm.exception))
            self.assertIsNotNone(con.proc.poll())

    def test_tail_is_bounded(self):
        with self.spawn("i=0; while [ $i -lt 500 ]; do echo line-$i-xxxxxxxxxx; i=$((i+1)); done; echo end") as con:
            con.expect(r"end\n", 10)
            with self.assertRaises(ConsoleError) as cm:
                con.expect(r"never", 0.2)
            msg = str(cm.exception)
            self.assertIn("line-499", msg)
            self.assertNotIn("line-1-", msg)
            self.assertLess(len(msg), 2600)

    def test_exit_before_match(self):
        with self.spawn("echo bye; exit 5") as con:
            with self.assertRaises(ConsoleError) as cm:
                con.expect(r"never", 10)
            self.assertNotIsInstance(cm.exception, ConsoleTimeout)
            self.assertIn("status 5", str(cm.exception))

    def test_fail_pattern_stops_at_once(self):
        with self.spawn("echo booting; echo 'Kernel panic - not syncing'; echo trace; sleep 60",
                        fail_patterns=[r"Kernel panic"]) as con:
            start = time.monotonic()
            with self.assertRaises(ConsoleError) as cm:
                con.expect(r"never", 50)
            self.assertLess(time.monotonic() - start, 10)
            self.assertIn("trace", str(cm.exception))  # the context after the pattern is kept

    def test_escapes_and_carriage_returns_are_cleaned_even_when_split(self):
        with self.spawn(r'printf "a\r\n# \033[6"; sleep 0.3; printf "nok\033[1;31mred\033[0m\n"') as con:
            con.expect(r"a\n# okred\n", 10)
            self.assertEqual(con.wait_exit(10), 0)

    def test_output_cut_off_inside_an_escape_is_kept_once(self):
        with self.spawn(r'printf "end\033["') as con:
            self.assertEqual(con.wait_exit(10), 0)
            self.assertEqual(con.text, "end\x1b[")

    def test_failure_kills_the_process_group(self):
        with tempfile.TemporaryDirectory() as tmp:
            pidfile = os.path.join(tmp, "pid")
            with self.spawn(f"sleep 60 & echo $! > {pidfile}; echo started; wait") as con:
                con.expect(r"started", 10)
                with self.assertRaises(ConsoleError):
                    con.wait_exit(0.5)
            with open(pidfile) as f:
                grandchild = int(f.read())
            for _ in range(50):
                if not is_running(grandchild):
                    break
                time.sleep(0.1)
            else:
                self.fail("the command's own child survived the kill")

    def test_a_missing_program_is_a_console_error(self):
        with self.assertRaises(ConsoleError) as cm:
            Console(["/nonexistent/program"], use_pty=self.use_pty)
        self.assertIn("cannot start /nonexistent/program", str(cm.exception))

    def test_log_file_has_the_transcript(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "con.log")
            with self.spawn("echo first; echo second", log_path=log) as con:
                self.assertEqual(con.wait_exit(10), 0)
            with open(log, "rb") as f:
                text = f.read().decode()
            self.assertIn("$ sh -c", text)
            self.assertIn("first", text)
            self.assertIn("second", text)


class OnPty(ConsoleTest, unittest.TestCase):
    use_pty = True


class OnPipes(ConsoleTest, unittest.TestCase):
    use_pty = False


if __name__ == "__main__":
    unittest.main(verbosity=2)
