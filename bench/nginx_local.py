"""Run docker/nginx/nginx.conf.template (the Compose proxy's configuration) from Debian's nginx.

    .venv/bin/python bench/nginx_local.py --listen 127.0.0.1:8080 --upstream 127.0.0.1:8000 \
        --static-root staticfiles-parent/ --run-dir var/nginx     # renders, then runs nginx

The template's ${PROXY_*} variables are filled in as the official image's envsubst would (only
PROXY_ names; nginx's own $variables are left alone); pid, error log and temporary files go to
the run directory, so it runs beside any system nginx and, as a non-root user, too.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "docker" / "nginx" / "nginx.conf.template"
PROXY_VARIABLE = re.compile(r"\$\{(PROXY_[A-Z0-9_]+)\}|\$(PROXY_[A-Z0-9_]+)")


def render(template: str, values: dict[str, str]) -> str:
    """envsubst restricted to PROXY_* names; a PROXY_ name without a value is an error."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"{name} has no value")
        return values[name]

    return PROXY_VARIABLE.sub(substitute, template)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        raise SystemExit("nginx not found: apt-get install nginx-light (or nginx)")
    return found


def local_config(
    *,
    run_dir: Path,
    listen: str,
    upstreams: Sequence[str],
    static_root: Path,
    access_log: str = "off",
) -> Path:
    """Render the template into run_dir/nginx.conf for gunicorn(s) at ``upstreams``."""
    run_dir = run_dir.resolve()
    temp = run_dir / "temp"
    for sub in ("client_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp"):
        (temp / sub).mkdir(parents=True, exist_ok=True)
    # max_fails=0: on loopback a busy gunicorn is not a dead one (never taken out of rotation).
    servers = " ".join(f"server {u} max_fails=0;" for u in upstreams)
    values = {
        "PROXY_LISTEN": listen,
        "PROXY_UPSTREAM": servers,
        "PROXY_RESOLVER": "",  # fixed addresses: no DNS
        "PROXY_STATIC_ROOT": str(static_root.resolve()),
        "PROXY_TEMP_DIR": str(temp),
        "PROXY_ACCESS_LOG": access_log,
        "PROXY_USER": getpass.getuser(),
    }
    path = run_dir / "nginx.conf"
    path.write_text(render(TEMPLATE.read_text(), values))
    return path


def nginx_command(config: Path, *, test: bool = False) -> list[str]:
    run_dir = config.parent
    globals_ = f"daemon off; pid {run_dir / 'nginx.pid'}; error_log {run_dir / 'error.log'} warn;"
    return [nginx_binary(), "-p", str(run_dir), "-c", str(config), "-g", globals_] + (
        ["-t", "-q"] if test else []
    )


def check_config(config: Path) -> None:
    result = subprocess.run(nginx_command(config, test=True), capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"nginx -t failed:\n{result.stderr}")


def start(config: Path, *, cpus: str | None = None, port: int | None = None) -> subprocess.Popen:
    """Start nginx in the foreground (as a child) on ``cpus`` (taskset list), wait for it."""
    check_config(config)
    command = nginx_command(config)
    if cpus:
        command = ["taskset", "-c", cpus, *command]
    process = subprocess.Popen(command)
    if port:
        import socket

        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError("nginx exited; see error.log in its run directory") from None
                time.sleep(0.1)
    return process


def stop(process: subprocess.Popen) -> None:
    """Graceful stop (SIGQUIT: workers finish their requests)."""
    if process.poll() is None:
        process.send_signal(3)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--upstream", action="append", help="gunicorn host:port (repeatable)")
    parser.add_argument(
        "--static-root", type=Path, default=ROOT / "var" / "nginx" / "www", help="holds static/"
    )
    parser.add_argument("--run-dir", type=Path, default=ROOT / "var" / "nginx")
    parser.add_argument("--access-log", default="off", help='e.g. "/dev/stdout timed"')
    parser.add_argument("--render-only", action="store_true", help="print the rendered file")
    args = parser.parse_args()
    config = local_config(
        run_dir=args.run_dir,
        listen=args.listen,
        upstreams=args.upstream or ["127.0.0.1:8000"],
        static_root=args.static_root,
        access_log=args.access_log,
    )
    if args.render_only:
        sys.stdout.write(config.read_text())
        return
    check_config(config)
    print(" ".join(nginx_command(config)), file=sys.stderr)
    os.execv(nginx_binary(), nginx_command(config))


if __name__ == "__main__":
    main()
