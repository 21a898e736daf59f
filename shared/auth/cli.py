"""`tpl-credentials`: make entries for the credentials file (format: docs/security.md).

tpl-credentials hash-password --user alice --namespaces team-a,team-b   # asks for the password
printf '%s\\n' "$PASSWORD" | tpl-credentials hash-password --user alice --namespaces '*'
tpl-credentials mint-token --name gitlab-ci --namespaces team-a
tpl-credentials check /etc/tpl/credentials
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from collections.abc import Sequence
from typing import TextIO

import bcrypt

from shared.auth.credentials import (
    TOKEN_HASH_PREFIX,
    CredentialsFile,
    check_name,
    format_namespaces,
    parse_namespaces,
    token_digest,
)

TOKEN_PREFIX = "tpl_"  # noqa: S105 -- a prefix, not a secret: recognisable in leaked-secret scans
TOKEN_BYTES = 32  # 256 bits: not guessable, so one SHA-256 (not bcrypt) is enough at rest
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_BYTES = 72  # bcrypt ignores the rest


class UsageError(Exception):
    pass


def _namespaces(text: str | None, required: bool) -> str | None:
    if text is None:
        if required:
            raise UsageError("--namespaces is required (a comma-separated list, or '*' for every namespace)")
        return None
    try:
        return format_namespaces(parse_namespaces(text))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _read_password(stdin: TextIO) -> str:
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise UsageError("the passwords differ")
        return first
    line = stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def hash_password(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> None:
    if args.user is not None:
        try:
            check_name(args.user)
        except ValueError as exc:
            raise UsageError(f"--user: {exc}") from exc
    namespaces = _namespaces(args.namespaces, required=args.user is not None)
    password = _read_password(stdin)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise UsageError(f"bcrypt uses only the first {MAX_PASSWORD_BYTES} bytes; use a shorter password")
    hashed = bcrypt.hashpw(raw, bcrypt.gensalt(args.cost)).decode("ascii")
    print(f"{args.user}:{hashed}:{namespaces}" if args.user is not None else hashed, file=out)


def mint_token(args: argparse.Namespace, out: TextIO) -> None:
    try:
        check_name(args.name)
    except ValueError as exc:
        raise UsageError(f"--name: {exc}") from exc
    namespaces = _namespaces(args.namespaces, required=True)
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    entry = f"{args.name}:{TOKEN_HASH_PREFIX}{token_digest(token).hex()}:{namespaces}"
    print(f"# bearer token for {args.name}; shown only now, store it in the CI system's secret variables:", file=out)
    print(token, file=out)
    print("# line for the credentials file:", file=out)
    print(entry, file=out)


def check(args: argparse.Namespace, out: TextIO) -> int:
    credentials, problems = CredentialsFile(args.file).load()
    for problem in problems:
        print(problem, file=out)
    print(f"{len(credentials.users)} users, {len(credentials.tokens)} tokens", file=out)
    return 1 if problems or not credentials else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tpl-credentials", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    hp = sub.add_parser("hash-password", help="hash a password read from stdin (or the terminal)")
    hp.add_argument("--user", help="print a whole file line for this user (then --namespaces is required)")
    hp.add_argument("--namespaces", help="comma-separated namespaces the user may read, or '*'")
    hp.add_argument("--cost", type=int, default=12, choices=range(4, 32), metavar="4..31", help="bcrypt cost")
    mt = sub.add_parser("mint-token", help="make a bearer token and its file line")
    mt.add_argument("--name", required=True, help="who uses the token (shown in logs)")
    mt.add_argument("--namespaces", required=True, help="comma-separated namespaces, or '*'")
    ck = sub.add_parser("check", help="validate a credentials file")
    ck.add_argument("file")
    return parser


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    stdin = stdin if stdin is not None else sys.stdin
    out = out if out is not None else sys.stdout
    try:
        if args.command == "hash-password":
            hash_password(args, stdin, out)
        elif args.command == "mint-token":
            mint_token(args, out)
        else:
            return check(args, out)
    except UsageError as exc:
        print(f"tpl-credentials: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
