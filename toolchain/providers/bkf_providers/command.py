"""Substitute for pulumi-resource-command 1.2.1: local.Command, remote.Command, remote.CopyToRemote.

Follows the upstream provider's semantics: `triggers` replace, any other input
change updates (running `update`, else `create`), `delete` runs on delete, stdout
and stderr lose one trailing newline, the previous outputs are in the environment
as PULUMI_COMMAND_STDOUT/STDERR, a non-zero exit fails with the combined output.
Remote operations run the system OpenSSH client (upstream embeds an SSH client).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, ClassVar

from .server import Context, Provider, ProviderError, ResourceType, values_equal
from .wire import UNKNOWN, Secret, is_archive, is_asset, reveal

NAME = "command"
VERSION = "1.2.1"

DEFAULT_INTERPRETER = ("/bin/sh", "-c")
LOGGING = ("stdout", "stderr", "stdoutAndStderr", "none")
CONNECTION_DEFAULTS: dict[str, Any] = {"user": "root", "port": 22, "dialErrorLimit": 10, "perDialTimeout": 15}
#: HostKeyAlias the pinned host key is filed under in the temporary known_hosts
PINNED_ALIAS = "pulumi-command-host"


def unique_hex(prefix: str = "") -> str:
    """Like upstream's resource.NewUniqueHex(prefix, 8, 0): prefix + 16 random hex digits."""
    return prefix + secrets.token_hex(8)


def name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if "::" in urn else ""


def go_quote(s: str) -> str:
    """A double-quoted string like Go's %q (close enough for messages)."""
    return json.dumps(s, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# running a process


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str
    #: stdout and stderr interleaved as they arrived
    combined: str


def run_process(ctx: Context, argv: list[str], *, cwd: str | None = None, env: Mapping[str, str] | None = None,
                stdin: bytes | None = None, stdin_writer: Callable[[IO[bytes]], None] | None = None,
                log_stdout: bool = True, log_stderr: bool = True) -> Completed:
    """Run argv, feeding stdin, collecting stdout/stderr and streaming their lines to the engine log."""
    feed = stdin_writer is not None or bool(stdin)
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env) if env is not None else None,
                                stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError as e:
        what = cwd if cwd is not None and not os.path.isdir(cwd) else argv[0]
        op = "chdir" if what == cwd else "fork/exec"
        raise ProviderError(f"{op} {what}: no such file or directory") from e
    except PermissionError as e:
        raise ProviderError(f"fork/exec {argv[0]}: permission denied") from e
    ctx.track(proc)
    lock = threading.Lock()
    out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
    combined = bytearray()

    def pump(name: str, stream: io.BufferedReader, log: bool) -> None:
        pending = b""
        while chunk := stream.read1(65536):
            with lock:
                out[name] += chunk
                combined.extend(chunk)
            if log:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    ctx.log(line.decode(errors="replace"), "info", ephemeral=True)
        if log and pending:
            ctx.log(pending.decode(errors="replace"), "info", ephemeral=True)

    def feed_stdin(stream: IO[bytes]) -> None:
        try:
            if stdin_writer is not None:
                stdin_writer(stream)
            elif stdin:
                stream.write(stdin)
        except (BrokenPipeError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                stream.close()

    # Popen's pipes are buffered readers (bufsize=-1): read1 returns what one read gets.
    assert isinstance(proc.stdout, io.BufferedReader) and isinstance(proc.stderr, io.BufferedReader)
    threads = [threading.Thread(target=pump, args=("stdout", proc.stdout, log_stdout), daemon=True),
               threading.Thread(target=pump, args=("stderr", proc.stderr, log_stderr), daemon=True)]
    if feed:
        assert proc.stdin is not None
        threads.append(threading.Thread(target=feed_stdin, args=(proc.stdin,), daemon=True))
    for t in threads:
        t.start()
    try:
        rc = proc.wait()
        for t in threads:
            t.join()
    finally:
        ctx.untrack(proc)
    return Completed(rc, out["stdout"].decode(errors="replace"), out["stderr"].decode(errors="replace"),
                     combined.decode(errors="replace"))


def exit_description(rc: int, remote: bool) -> str:
    if rc < 0:
        try:
            return f"signal: {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal: {-rc}"
    return f"Process exited with status {rc}" if remote else f"exit status {rc}"


def trim(s: str) -> str:
    """Upstream trims one trailing newline from stdout and stderr."""
    return s.removesuffix("\n")


def logging_flags(value: Any) -> tuple[bool, bool]:
    v = reveal(value) or "stdoutAndStderr"
    return v in ("stdout", "stdoutAndStderr"), v in ("stderr", "stdoutAndStderr")


def _validate_common(news: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    logging = reveal(news.get("logging"))
    if logging not in (None, UNKNOWN) and logging not in LOGGING:
        out.append(("logging", f"value must be one of: {list(LOGGING)}, got: {logging!r}"))
    return out


def previous_env(state: Mapping[str, Any], add: Any) -> dict[str, str]:
    """PULUMI_COMMAND_STDOUT/STDERR of the previous run, unless addPreviousOutputInEnv is false."""
    env: dict[str, str] = {}
    if reveal(add) is False:
        return env
    for k, var in (("stdout", "PULUMI_COMMAND_STDOUT"), ("stderr", "PULUMI_COMMAND_STDERR")):
        v = reveal(state.get(k))
        if isinstance(v, str) and v:
            env[var] = v
    return env


class _CommandBase(ResourceType):
    """Shared lifecycle of local and remote Command: create, update (or create again), delete."""

    replace_on = frozenset({"triggers"})
    computed = ("stdout", "stderr")

    def run(self, ctx: Context, command: str, inputs: dict[str, Any], previous: Mapping[str, Any]) -> tuple[str, str]:
        raise NotImplementedError

    def create(self, ctx: Context, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        id_ = unique_hex(name_of(ctx.urn))
        cmd = reveal(inputs.get("create"))
        stdout, stderr = self.run(ctx, cmd, inputs, {}) if cmd is not None else ("", "")
        return id_, {**inputs, "stdout": stdout, "stderr": stderr}

    def update(self, ctx: Context, id_: str, olds: dict[str, Any], old_inputs: dict[str, Any],
               news: dict[str, Any], preview: bool) -> dict[str, Any]:
        cmd = news.get("update") if news.get("update") is not None else news.get("create")
        if cmd is None:
            return {**news, "stdout": olds.get("stdout", ""), "stderr": olds.get("stderr", "")}
        if preview:
            return {**news, "stdout": UNKNOWN, "stderr": UNKNOWN}
        stdout, stderr = self.run(ctx, reveal(cmd), news, olds)
        return {**news, "stdout": stdout, "stderr": stderr}

    def delete(self, ctx: Context, id_: str, olds: dict[str, Any], old_inputs: dict[str, Any]) -> None:
        cmd = reveal(olds.get("delete"))
        if cmd is not None:
            self.run(ctx, cmd, olds, olds)


# ---------------------------------------------------------------------------------------------
# local.Command


def local_env(environment: Mapping[str, Any] | None, previous: Mapping[str, str]) -> dict[str, str]:
    """The provider's own environment, then the resource's `environment`, then the previous outputs."""
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (environment or {}).items()})
    env.update(previous)
    return env


class LocalCommandResource(_CommandBase):
    token = "command:local:Command"
    inputs = ("create", "update", "delete", "interpreter", "dir", "environment", "stdin", "triggers",
              "addPreviousOutputInEnv", "logging", "assetPaths", "archivePaths")
    defaults: ClassVar[dict[str, Any]] = {"addPreviousOutputInEnv": True}

    def validate(self, news: dict[str, Any]) -> list[tuple[str, str]]:
        out = _validate_common(news)
        for k in ("assetPaths", "archivePaths"):
            if news.get(k) is not None:
                out.append((k, f"{k} is not supported by this substitute pulumi-resource-command"))
        return out

    def run(self, ctx: Context, command: str, inputs: dict[str, Any], previous: Mapping[str, Any]) -> tuple[str, str]:
        plain = reveal(inputs)
        argv = [*(plain.get("interpreter") or DEFAULT_INTERPRETER), command]
        env = local_env(plain.get("environment"), previous_env(previous, plain.get("addPreviousOutputInEnv")))
        stdin = plain.get("stdin")
        log_out, log_err = logging_flags(plain.get("logging"))
        done = run_process(ctx, argv, cwd=plain.get("dir") or os.getcwd(), env=env,
                           stdin=stdin.encode() if stdin else None, log_stdout=log_out, log_stderr=log_err)
        if done.returncode != 0:
            raise ProviderError(f"{exit_description(done.returncode, False)}: running {go_quote(command)}:\n"
                                f"{done.combined}")
        return trim(done.stdout), trim(done.stderr)


# ---------------------------------------------------------------------------------------------
# SSH (remote.Command, remote.CopyToRemote)

#: ssh's own messages for failures to reach the host (exit 255): these dials are retried
DIAL_ERRORS = re.compile(
    r"Connection refused|Connection timed out|timed out during banner exchange|No route to host|"
    r"Network is unreachable|Could not resolve hostname|kex_exchange_identification|Connection closed by .* port")

#: ssh's own messages for failures after connecting (exit 255): not retried, reported as ssh errors
SSH_ERRORS = re.compile(
    r"Permission denied \(|Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|"
    r"Unable to negotiate|no matching host key type|Load key |invalid format")

def host_key_entry(host_key: str) -> tuple[str, str]:
    """(known_hosts line under PINNED_ALIAS, HostKeyAlgorithms) for a pinned "type base64 [comment]" key."""
    parts = host_key.strip().split()
    if len(parts) < 2:
        raise ProviderError(f"connection.hostKey: expected an authorized_keys line (type base64), got {host_key!r}")
    key_type, blob = parts[0], parts[1]
    # Upstream (golang.org/x/crypto/ssh FixedHostKey) offers only the pinned key's own algorithm:
    # for ssh-rsa that is SHA-1 "ssh-rsa", which OpenSSH >= 8.8 refuses by default.
    return f"{PINNED_ALIAS} {key_type} {blob}\n", key_type


def _opt(name: str, value: str) -> list[str]:
    return ["-o", f'{name}="{value}"' if re.search(r"\s", value) else f"{name}={value}"]


def ssh_argv(conn: Mapping[str, Any], remote_command: str, key_file: str | None = None,
             known_hosts: str | None = None, ssh: str = "ssh", subsystem: bool = False) -> list[str]:
    """The OpenSSH client command line for one remote command (no ~/.ssh/config, no prompts);
    with `subsystem`, remote_command names an SSH subsystem (sftp) instead.

    Host keys are not checked unless connection.hostKey is set (like upstream); then the
    key is pinned through `known_hosts` (written by ``ssh_files``) and checked strictly.
    """
    port = int(conn.get("port") or 22)
    user = str(conn.get("user") or "root")
    argv = [ssh, "-F", "/dev/null", "-T", "-p", str(port), "-l", user,
            *_opt("BatchMode", "yes"), *_opt("LogLevel", "ERROR"), *_opt("ConnectionAttempts", "1"),
            *_opt("UpdateHostKeys", "no"), *_opt("GlobalKnownHostsFile", "/dev/null")]
    timeout = conn.get("perDialTimeout", 15)
    if timeout is not None and int(timeout) > 0:
        argv += _opt("ConnectTimeout", str(int(timeout)))
    if key_file:
        argv += ["-i", key_file, *_opt("IdentitiesOnly", "yes")]
    if conn.get("agentSocketPath"):
        argv += _opt("IdentityAgent", str(conn["agentSocketPath"]))
    if conn.get("hostKey"):
        if not known_hosts:
            raise ProviderError("connection.hostKey is set but no known_hosts file was written")
        _, algorithms = host_key_entry(str(conn["hostKey"]))
        argv += [*_opt("StrictHostKeyChecking", "yes"), *_opt("UserKnownHostsFile", known_hosts),
                 *_opt("HostKeyAlias", PINNED_ALIAS), *_opt("HostKeyAlgorithms", algorithms)]
    else:
        argv += [*_opt("StrictHostKeyChecking", "no"), *_opt("UserKnownHostsFile", "/dev/null"),
                 *_opt("CheckHostIP", "no")]
    return [*argv, *(["-s"] if subsystem else []), "--", str(conn["host"]), remote_command]


@dataclass
class SshFiles:
    key: str | None
    known_hosts: str | None


@contextlib.contextmanager
def ssh_files(conn: Mapping[str, Any]) -> Iterator[SshFiles]:
    """The private key (0600) and pinned known_hosts in a private temp dir, removed afterwards."""
    d = tempfile.mkdtemp(prefix="pulumi-command-ssh-")
    try:
        os.chmod(d, 0o700)
        key = known = None
        if conn.get("privateKey"):
            key = os.path.join(d, "id")
            text = str(conn["privateKey"])
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text if text.endswith("\n") else text + "\n")
        if conn.get("hostKey"):
            known = os.path.join(d, "known_hosts")
            with open(known, "w") as f:
                f.write(host_key_entry(str(conn["hostKey"]))[0])
        yield SshFiles(key, known)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def dial_attempts(conn: Mapping[str, Any]) -> int | None:
    """How many times to dial (dialErrorLimit; -1 = no limit -> None)."""
    limit = int(conn.get("dialErrorLimit", 10))
    return None if limit == -1 else max(1, limit)


def agent_socket(conn: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    """The agent upstream dials: connection.agentSocketPath when set, else $SSH_AUTH_SOCK when non-empty."""
    if conn.get("agentSocketPath") is not None:
        return str(conn["agentSocketPath"])
    return environ.get("SSH_AUTH_SOCK") or None


def dial_agent(path: str) -> None:
    """Upstream net.Dial()s the agent before every SSH connection and aborts the operation if it
    cannot (a stale SSH_AUTH_SOCK fails every remote command, even with a private key)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError as e:
            raise ProviderError(f"dial unix {path}: connect: {(e.strerror or str(e)).lower()}") from None


def ssh_run(ctx: Context, conn: Mapping[str, Any], command: str, *, stdin: bytes | None = None,
            stdin_writer: Callable[[IO[bytes]], None] | None = None, log_stdout: bool = True,
            log_stderr: bool = True, subsystem: bool = False) -> Completed:
    """Run a command (or with `subsystem`, open that SSH subsystem) on the connection's host,
    retrying failed dials like upstream."""
    agent = agent_socket(conn, os.environ)
    if agent:
        dial_agent(agent)
    attempts = dial_attempts(conn)
    n = 0
    with ssh_files(conn) as files:
        argv = (ssh_argv(conn, command, files.key, files.known_hosts, subsystem=True) if subsystem
                else ssh_argv(conn, command, files.key, files.known_hosts))
        while True:
            n += 1
            done = run_process(ctx, argv, stdin=stdin, stdin_writer=stdin_writer,
                               log_stdout=log_stdout, log_stderr=log_stderr)
            if done.returncode != 255:
                return done
            if SSH_ERRORS.search(done.stderr) and not done.stdout:
                raise ProviderError(f"ssh: connecting to {conn.get('user')}@{conn.get('host')}:{conn.get('port')} "
                                    f"failed: {done.stderr.strip()}")
            if not DIAL_ERRORS.search(done.stderr):
                return done
            if attempts is not None and n >= attempts:
                raise ProviderError(f"ssh: dialing {conn.get('user')}@{conn.get('host')}:{conn.get('port')} "
                                    f"failed {n} time(s): {done.stderr.strip()}")
            ctx.log(f"ssh: dial {n} failed ({done.stderr.strip()}), retrying", "debug")
            time.sleep(min(0.5 * 1.5 ** (n - 1), 5.0))


def connection_of(inputs: Mapping[str, Any]) -> dict[str, Any]:
    conn = reveal(inputs.get("connection"))
    if not isinstance(conn, dict):
        raise ProviderError("connection is required")
    return conn


def default_connection(value: Any) -> Any:
    """Fill upstream's connection defaults, keeping the value's secretness."""
    if isinstance(value, Secret):
        return Secret(default_connection(value.value))
    if not isinstance(value, dict):
        return value
    return {**value, **{k: v for k, v in CONNECTION_DEFAULTS.items() if value.get(k) is None}}


def validate_connection(value: Any) -> list[tuple[str, str]]:
    conn = reveal(value)
    if conn is None:
        return [("connection", "Missing required property 'connection'")]
    if conn is UNKNOWN or not isinstance(conn, dict):
        return []
    out = []
    if conn.get("host") is None:
        out.append(("connection.host", "Missing required property 'host'"))
    unsupported = {
        "proxy": "a proxy (bastion) connection",
        "privateKeyPassword": "an encrypted private key (privateKeyPassword)",
    }
    for k, what in unsupported.items():
        if conn.get(k) is not None:
            out.append((f"connection.{k}", f"{what} is not supported by this substitute pulumi-resource-command"))
    if conn.get("password") is not None and conn.get("privateKey") is None:
        out.append(("connection.password", "password authentication is not supported by this substitute "
                    "pulumi-resource-command (it runs ssh in batch mode): use privateKey or an SSH agent"))
    host_key = conn.get("hostKey")
    if isinstance(host_key, str) and len(host_key.split()) < 2:
        out.append(("connection.hostKey", "expected an authorized_keys line: <type> <base64>"))
    return out


class RemoteCommandResource(_CommandBase):
    token = "command:remote:Command"
    inputs = ("connection", "create", "update", "delete", "environment", "stdin", "triggers",
              "addPreviousOutputInEnv", "logging")
    defaults: ClassVar[dict[str, Any]] = {"addPreviousOutputInEnv": True}
    secret_outputs = ("connection",)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        inputs, failures = super().check(olds, {**news, "connection": default_connection(news.get("connection"))})
        if inputs.get("connection") is None:
            inputs.pop("connection", None)
        return inputs, failures

    def validate(self, news: dict[str, Any]) -> list[tuple[str, str]]:
        out = _validate_common(news) + validate_connection(news.get("connection"))
        env = reveal(news.get("environment"))
        if env is UNKNOWN or env:
            out.append(("environment", "environment is not supported by this substitute "
                        "pulumi-resource-command (upstream relies on the server's AcceptEnv); pass values "
                        "on stdin or in the command instead"))
        return out

    def run(self, ctx: Context, command: str, inputs: dict[str, Any], previous: Mapping[str, Any]) -> tuple[str, str]:
        plain = reveal(inputs)
        if plain.get("environment"):
            raise ProviderError("environment is not supported by this substitute pulumi-resource-command")
        stdin = plain.get("stdin")
        log_out, log_err = logging_flags(plain.get("logging"))
        done = ssh_run(ctx, connection_of(plain), command, stdin=stdin.encode() if stdin else None,
                       log_stdout=log_out, log_stderr=log_err)
        if done.returncode != 0:
            raise ProviderError(f"{exit_description(done.returncode, True)}: running {go_quote(command)}:\n"
                                f"{done.combined}")
        return trim(done.stdout), trim(done.stderr)


# ---------------------------------------------------------------------------------------------
# remote.CopyToRemote


#: what golang.org/x/crypto/ssh returns when the server has no such subsystem (upstream's whole error)
NO_SFTP = "ssh: subsystem request failed"


def copy_file_script(remote_path: str, name: str | None) -> str:
    """Remote sh: write stdin to remote_path, or into it (as `name`) if it is a directory. Like
    upstream's sftp Create, parents are not made: a missing parent directory is an error."""
    into_dir = (f'if [ -d "$d" ]; then d="$d"/{shlex.quote(name)}; fi' if name is not None else
                'if [ -d "$d" ]; then echo "remote path $d is a directory; when using a text asset, '
                'remotePath must be a file path" >&2; exit 1; fi')
    return (f"d={shlex.quote(remote_path)}; {into_dir}; "
            '[ -d "$(dirname -- "$d")" ] || { echo "failed to create remote file $d: file does not exist" >&2; '
            'exit 1; }; cat > "$d"')


def copy_dir_script(remote_path: str, name: str | None) -> str:
    """Remote sh: unpack a tar stream on stdin into remote_path[/name] (upstream's directory rules)."""
    not_dir = '[ -e "$d" ] && [ ! -d "$d" ] && { echo "remote path $d exists but is not a directory" >&2; exit 1; }'
    sub = f'd="$d"/{shlex.quote(name)}; {not_dir}; ' if name is not None else ""
    return (f"d={shlex.quote(remote_path)}; {not_dir}; {sub}"
            'mkdir -p -- "$d" && tar -C "$d" -xf -')


def tar_writer(src: str) -> Callable[[IO[bytes]], None]:
    """Stream the contents of directory src as a tar (owners reset, like files a copy creates)."""

    def reset(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    def write(stream: IO[bytes]) -> None:
        with tarfile.open(fileobj=stream, mode="w|") as tar:
            for entry in sorted(os.listdir(src)):
                tar.add(os.path.join(src, entry), arcname=entry, filter=reset)

    return write


def source_problem(source: Any) -> tuple[str, str] | None:
    s = reveal(source)
    if s is None:
        return ("source", "Missing required property 'source'")
    if s is UNKNOWN:
        return None
    if is_asset(s):
        if s.get("path") is None and s.get("text") is None:
            return ("asset", "asset must be a path-based file asset or a text asset")
        return None
    if is_archive(s):
        if s.get("path") is None:
            return ("archive", "archive must be a path to a file or directory")
        return None
    return ("source", "source must be an asset or an archive")


class CopyToRemoteResource(ResourceType):
    token = "command:remote:CopyToRemote"
    inputs = ("connection", "source", "remotePath", "triggers")
    replace_on = frozenset({"triggers"})
    secret_outputs = ("connection",)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        news = {**news, "connection": default_connection(news.get("connection"))}
        if news["connection"] is None:
            news.pop("connection")
        src = news.get("source")
        if isinstance(src, dict) and is_asset(src) and isinstance(src.get("path"), str) and not src.get("hash") \
                and os.path.isfile(src["path"]):
            with open(src["path"], "rb") as f:  # the engine normally adds it; content changes must show
                news["source"] = {**src, "hash": hashlib.sha256(f.read()).hexdigest()}
        return super().check(olds, news)

    def validate(self, news: dict[str, Any]) -> list[tuple[str, str]]:
        out = validate_connection(news.get("connection"))
        if news.get("remotePath") is None:
            out.append(("remotePath", "Missing required property 'remotePath'"))
        problem = source_problem(news.get("source"))
        return out + ([problem] if problem else [])

    def copy(self, ctx: Context, inputs: dict[str, Any]) -> None:
        plain = reveal(inputs)
        conn, src, dest = connection_of(plain), plain["source"], str(plain["remotePath"])
        # Upstream copies over SFTP (github.com/pkg/sftp): a host without the sftp subsystem fails
        # here with x/crypto's bare error, before anything is written. The copy below streams
        # through exec, so open the subsystem first to fail the same way.
        probe = ssh_run(ctx, conn, "sftp", stdin=b"", log_stdout=False, log_stderr=False, subsystem=True)
        if probe.returncode != 0:
            if "subsystem request failed" in probe.stderr:
                raise ProviderError(NO_SFTP)
            raise ProviderError(f"{exit_description(probe.returncode, True)}: {probe.combined.strip()}")
        stdin: bytes | None = None
        writer: Callable[[IO[bytes]], None] | None = None
        if is_asset(src) and src.get("text") is not None:
            script, stdin = copy_file_script(dest, None), str(src["text"]).encode()
        else:
            path = str(src["path"])
            if os.path.isdir(path):
                name = None if path.endswith("/") else os.path.basename(path)
                script, writer = copy_dir_script(dest, name), tar_writer(path)
            else:
                try:
                    with open(path, "rb") as f:
                        stdin = f.read()
                except OSError as e:
                    raise ProviderError(f"open {path}: {e.strerror}") from e
                script = copy_file_script(dest, os.path.basename(path))  # empty: stdin is /dev/null
        done = ssh_run(ctx, conn, script, stdin=stdin, stdin_writer=writer, log_stdout=False, log_stderr=False)
        if done.returncode != 0:
            raise ProviderError(f"failed to copy to remote path {dest} on {conn.get('host')}: "
                                f"{exit_description(done.returncode, True)}: {done.combined.strip()}")

    def create(self, ctx: Context, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        self.copy(ctx, inputs)
        return unique_hex(), dict(inputs)

    def update(self, ctx: Context, id_: str, olds: dict[str, Any], old_inputs: dict[str, Any],
               news: dict[str, Any], preview: bool) -> dict[str, Any]:
        if preview:
            return dict(news)
        if not (values_equal(olds.get("source"), news.get("source"))
                and values_equal(olds.get("remotePath"), news.get("remotePath"))):
            self.copy(ctx, news)
        return dict(news)

    # delete: upstream leaves the copied file in place (the base class does nothing)


RESOURCES = (LocalCommandResource(), RemoteCommandResource(), CopyToRemoteResource())


def make_provider(engine_address: str = "") -> Provider:
    return Provider(NAME, VERSION, RESOURCES, engine_address)

