"""Run the sp-* commands as processes forked from one warm interpreter, for the tests.

Each tool still runs as its own process: its own stdin, stdout and stderr pipes, its exit status,
its signal handlers, its environment and working directory. What it skips is the start of a
fresh interpreter and the imports (torch about 1.5 s, fairseq about 5 s of CPU): a server
process imports them once, then forks one child per command. The server never runs a torch
operation and never touches CUDA, so no thread pool or device context is forked half-made.

The entry points are those of tools/pyproject.toml, as the console scripts call them.
`SP_TEST_FORK=0`, or `SP_BIN` (a machine without the venv), runs fresh commands instead.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def entry_points() -> dict[str, str]:
    return tomllib.loads((ROOT / "tools" / "pyproject.toml").read_text())["project"]["scripts"]


def serve(control: socket.socket) -> None:
    """The server: import once, then fork one child per request, answer its exit status."""
    import importlib
    import traceback

    import fairseq  # noqa: F401  the slow imports, once; no torch operation runs here
    import fairseq_cli.train  # noqa: F401
    import torch  # noqa: F401

    scripts = entry_points()
    for module in {target.split(":")[0] for target in scripts.values()}:
        importlib.import_module(module)
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, 3)
        if not message:  # the test process is gone
            return
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                control.close()
                for target, fd in enumerate(fds):  # stdin, stdout, stderr; received fds are >= 3
                    os.dup2(fd, target)
                    os.close(fd)
                sys.stdin = open(0, "r", encoding="utf-8", closefd=False)
                sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
                sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
                os.environ.clear()
                os.environ.update(request["env"])
                os.chdir(request["cwd"])
                module, function = scripts[request["tool"]].split(":")
                sys.argv = [request["tool"], *request["args"]]
                try:
                    getattr(importlib.import_module(module), function)()
                    code = 0
                except SystemExit as stop:  # as the interpreter maps it to an exit status
                    if stop.code is None or isinstance(stop.code, int):
                        code = stop.code or 0
                    else:
                        print(stop.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except BaseException:
                        pass
                os._exit(code)
        for fd in fds:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        control.sendall(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode() + b"\n")


class ForkServer:
    """One warm interpreter per test process; `run` is subprocess.run's answer for one sp-* command."""

    def __init__(self):
        self.control, theirs = socket.socketpair()
        self.server = subprocess.Popen([sys.executable, __file__, str(theirs.fileno())], pass_fds=[theirs.fileno()],
                                       cwd=ROOT, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        theirs.close()
        self.lock = threading.Lock()

    def run(self, tool: str, args: list[str], input: str | None = None, cwd=None) -> subprocess.CompletedProcess:
        pipes = [os.pipe() for _ in range(3)]  # stdin, stdout, stderr: (read end, write end)
        theirs = [pipes[0][0], pipes[1][1], pipes[2][1]]
        request = {"tool": tool, "args": args, "env": dict(os.environ), "cwd": str(cwd or os.getcwd())}
        with self.lock:
            socket.send_fds(self.control, [json.dumps(request).encode()], theirs)
            for fd in theirs:
                os.close(fd)
            output = {}

            def read(name, fd):
                with open(fd, "rb") as stream:
                    output[name] = stream.read().decode("utf-8", errors="replace")

            readers = [threading.Thread(target=read, args=("stdout", pipes[1][0])),
                       threading.Thread(target=read, args=("stderr", pipes[2][0]))]
            for reader in readers:
                reader.start()
            try:
                with open(pipes[0][1], "wb") as stdin:
                    stdin.write((input or "").encode())
            except BrokenPipeError:  # the command did not read all of it, as with subprocess.run
                pass
            for reader in readers:
                reader.join()
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = self.control.recv(4096)
                if not chunk:
                    raise RuntimeError(f"the fork server stopped (exit {self.server.wait()})")
                reply += chunk
        status = json.loads(reply)["status"]
        return subprocess.CompletedProcess([tool, *args], status, output["stdout"], output["stderr"])


_server: ForkServer | None = None


def forked(tool: str, args: list[str], input: str | None = None, cwd=None) -> subprocess.CompletedProcess | None:
    """The command's result from the fork server, or None where fresh processes are asked for."""
    global _server
    if os.environ.get("SP_TEST_FORK", "1") == "0" or os.environ.get("SP_BIN"):
        return None
    if _server is None:
        _server = ForkServer()
    return _server.run(tool, args, input, cwd)


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
