"""What the tests and the benchmarks that run the notebook or a cluster share: not part of the package."""
import socket
import sys


def papermill_command(notebook, out_notebook, parameters, cwd, python=sys.executable):
    """The command running `notebook` headless with papermill in `cwd`, each parameter given with -p (None as
    None), the executed copy written to `out_notebook`."""
    command = [str(python), "-m", "papermill", str(notebook), str(out_notebook), "--cwd", str(cwd)]
    for name, value in parameters.items():
        command += ["-p", name, "None" if value is None else str(value)]
    return command


def unused_ports(count):
    """Local ports free a moment ago, for a TF_CONFIG cluster on one machine (the servers that take them refuse to
    share a port, so none can be held open for them: a caller that loses the race retries with new ones)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
