"""framebus.auth in one process: password hashes, the credentials file, tokens, sessions, the
login throttle and the loopback rule; and `framebus user` as a real command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from framebus.auth import (
    CredentialsError,
    CredentialsFile,
    LoginThrottle,
    bearer_token,
    exposure_problem,
    hash_password,
    is_loopback,
    sign_session,
    verify_password,
    verify_session,
)

PASSWORD = "correct horse battery"


@pytest.fixture
def file(tmp_path: Path) -> CredentialsFile:
    credentials = CredentialsFile(tmp_path / "credentials.json")
    credentials.add_user("alice", PASSWORD)
    return credentials


def test_passwords_are_salted_scrypt_hashes() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("scrypt$16384$8$1$") and first != second, "a salt of its own each time"
    assert PASSWORD not in first
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    assert not verify_password(PASSWORD + "x", first) and not verify_password("", first)
    for broken in [
        "",
        "scrypt$1$2",
        "pbkdf2$1$1$1$AA==$AA==",
        first.replace("$8$", "$x$"),
        first[:-3] + "!!=",
    ]:
        assert not verify_password(PASSWORD, broken), broken
    with pytest.raises(ValueError):
        hash_password("")


def test_the_file_is_private_and_refused_when_others_may_read_or_change_it(file: CredentialsFile) -> None:
    assert os.stat(file.path).st_mode & 0o777 == 0o600
    assert set(json.loads(file.path.read_text())["users"]) == {"alice"}
    for mode in (0o640, 0o604, 0o620, 0o602, 0o660):
        os.chmod(file.path, mode)
        with pytest.raises(CredentialsError, match=f"has mode {mode:04o}.*chmod 600"):
            CredentialsFile(file.path).current()
    os.chmod(file.path, 0o600)
    assert set(CredentialsFile(file.path).current().users) == {"alice"}
    file.path.write_text("{not json")
    os.chmod(file.path, 0o600)
    with pytest.raises(CredentialsError, match="not one `framebus user` wrote"):
        CredentialsFile(file.path).current()


def test_a_missing_file_has_no_users_and_changes_are_seen_at_once(tmp_path: Path) -> None:
    reader, writer = CredentialsFile(tmp_path / "c.json"), CredentialsFile(tmp_path / "c.json")
    assert reader.current().users == {} and reader.current().check_password("alice", PASSWORD) is None
    writer.add_user("alice", PASSWORD)
    assert reader.current().check_password("alice", PASSWORD) is not None
    assert reader.current().check_password("alice", "wrong") is None
    assert reader.current().check_password("nobody", PASSWORD) is None
    writer.remove_user("alice")
    assert reader.current().users == {}
    with pytest.raises(CredentialsError, match="no user 'alice'"):
        writer.remove_user("alice")
    with pytest.raises(CredentialsError, match="user name"):
        writer.add_user("bad name", PASSWORD)


def test_tokens_belong_to_current_users_and_can_be_revoked(file: CredentialsFile) -> None:
    tid, token = file.add_token("alice")
    assert token.startswith(f"fbt_{tid}_") and token not in file.path.read_text()
    user = file.current().check_token(token)
    assert user is not None and user.name == "alice"
    for wrong in ["", "fbt_", token[:-1], token + "x", f"fbt_{tid}_guess", "Bearer " + token]:
        assert file.current().check_token(wrong) is None, wrong
    assert file.revoke_token(tid) == "alice" and file.current().check_token(token) is None
    _, token = file.add_token("alice")
    file.remove_user("alice")
    assert file.current().check_token(token) is None


def test_sessions_are_signed_expire_and_end_with_a_new_password(file: CredentialsFile) -> None:
    current = file.current()
    alice = current.users["alice"]
    cookie = sign_session(current, alice, 2_000)
    assert verify_session(current, cookie, now=1_999) == alice
    assert verify_session(current, cookie, now=2_001) is None, "expired"
    name, expires, mac = cookie.split(".")
    for forged in [f"{name}.3000.{mac}", f"bob.{expires}.{mac}", f"{name}.{expires}.{mac[::-1]}", "", "a.b",
                   f"{name}.{expires}", f"{name}.-5.{mac}"]:  # fmt: skip
        assert verify_session(current, forged, now=1_000) is None, forged
    file.add_user("alice", "another password")
    assert verify_session(file.current(), cookie, now=1_000) is None


def test_the_throttle_bounds_attempts_per_address_only() -> None:
    throttle = LoginThrottle(burst=3, rate=0.5, max_addresses=2)
    assert [throttle.attempt("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.attempt("a", now=0.0) == pytest.approx(2.0), "one more in 2 s"
    assert throttle.attempt("b", now=0.0) == 0.0, "another address is not affected"
    assert throttle.attempt("a", now=2.0) == 0.0 and throttle.attempt("a", now=2.0) > 0
    throttle.succeeded("a")
    assert throttle.attempt("a", now=2.0) == 0.0, "a correct login gives the allowance back"
    throttle.attempt("c", now=3.0)
    assert len(throttle._buckets) == 2, "bounded memory"


def test_loopback_rule() -> None:
    for host in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]:
        assert is_loopback(host) and exposure_problem(host, None, False) is None, host
    for host in ["0.0.0.0", "::", "192.168.1.50", "10.0.0.1", "box.local"]:
        assert not is_loopback(host), host
        assert "no authentication is configured" in (exposure_problem(host, None, False) or "")
        assert exposure_problem(host, "/etc/framebus/credentials.json", False) is None
        assert exposure_problem(host, None, True) is None
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    assert (
        bearer_token("Basic abc") is None and bearer_token("Bearer ") is None and bearer_token(None) is None
    )


def framebus(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("framebus")), *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_the_user_command(tmp_path: Path) -> None:
    path = str(tmp_path / "c.json")
    added = framebus("user", "add", "alice", "--credentials", path, stdin=PASSWORD + "\n")
    assert added.returncode == 0 and "added alice" in added.stdout, added.stderr
    assert os.stat(path).st_mode & 0o777 == 0o600 and PASSWORD not in Path(path).read_text()
    assert framebus("user", "add", "bob", "--credentials", path, stdin="short\n").returncode == 2
    token = framebus("user", "token", "alice", "--credentials", path)
    assert token.returncode == 0 and token.stdout.startswith("fbt_") and "shown once" in token.stderr
    listed = framebus("user", "list", "--credentials", path)
    tid = token.stdout.split("_")[1]
    assert listed.stdout == f"alice\ttokens: {tid}\n" and token.stdout.strip() not in listed.stdout
    assert CredentialsFile(path).current().check_token(token.stdout.strip()) is not None
    assert framebus("user", "revoke", tid, "--credentials", path).returncode == 0
    os.chmod(path, 0o644)
    refused = framebus("user", "list", "--credentials", path)
    assert refused.returncode == 2 and "chmod 600" in refused.stderr
    os.chmod(path, 0o600)
    assert framebus("user", "remove", "alice", "--credentials", path).returncode == 0
    assert framebus("user", "remove", "alice", "--credentials", path).returncode == 2
