"""Locations (on S3, or on this machine for the local executor), and the store a run's files go to."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Uri:
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return S3Uri(self.bucket, base + name)

    def as_prefix(self) -> S3Uri:
        """The same location as a "directory": empty or ending with one slash."""
        key = self.key.rstrip("/")
        return S3Uri(self.bucket, key + "/" if key else "")


@dataclass(frozen=True)
class LocalPath:
    """A file or directory on this machine, with the shape of an S3Uri (bucket "", key = absolute path)."""

    key: str
    bucket: str = ""

    def __str__(self) -> str:
        return self.key

    def child(self, name: str) -> LocalPath:
        return LocalPath(os.path.join(self.key, name))

    def as_prefix(self) -> LocalPath:
        return LocalPath(self.key.rstrip("/") + "/")


Location = S3Uri | LocalPath


def parse_location(text: str, what: str, *, need_key: bool = True) -> Location:
    """An ``s3://`` URI, or else a local path (made absolute): the local executor takes both."""
    if text.startswith("s3://"):
        return parse_s3_uri(text, what, need_key=need_key)
    if CONTROL_CHARS.search(text) or not text.strip():
        raise ValueError(f"{what} {text!r} is neither an s3:// URI nor a path")
    return LocalPath(os.path.abspath(os.path.expanduser(text)))


def parse_s3_uri(text: str, what: str, *, need_key: bool = True) -> S3Uri:
    """Parse ``s3://bucket/key``; raise ValueError with a message that says how to fix it."""
    if CONTROL_CHARS.search(text):
        raise ValueError(f"{what} {text!r} contains a control character (newline, tab, NUL...)")
    if not text.startswith("s3://"):
        raise ValueError(
            f"{what} {text!r} is not an S3 URI: write it as s3://bucket/path (local paths need --executor local)"
        )
    bucket, _, key = text[len("s3://") :].partition("/")
    if not BUCKET_RE.match(bucket):
        raise ValueError(f"{what} {text!r} has no valid bucket name: write it as s3://bucket/path")
    if need_key and not key.strip("/"):
        raise ValueError(f"{what} {text!r} names a bucket but no object: write it as s3://bucket/path")
    return S3Uri(bucket, key)


def encryption_args(kms_key_id: str | None) -> dict[str, str]:
    if kms_key_id:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
    return {"ServerSideEncryption": "AES256"}


@dataclass
class Storage:
    """Where a run's small files live: reads, encrypted writes, deletes and listings, on S3 or on disk."""

    s3: Any
    encryption: dict[str, str] = field(default_factory=lambda: encryption_args(None))

    def read_bytes(self, uri: Location) -> bytes:
        if isinstance(uri, LocalPath):
            return Path(uri.key).read_bytes()
        return self.s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()

    def read_text(self, uri: Location) -> str:
        return self.read_bytes(uri).decode("utf-8")

    def put(self, uri: Location, body: bytes, content_type: str = "text/plain") -> None:
        if isinstance(uri, LocalPath):
            Path(uri.key).parent.mkdir(parents=True, exist_ok=True)
            Path(uri.key).write_bytes(body)
            return
        self.s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, ContentType=content_type, **self.encryption)

    def create(self, uri: Location, body: bytes, content_type: str = "application/json") -> bool:
        """Write ``uri`` only if nothing is there yet (S3: If-None-Match; locally: O_EXCL); False if something was."""
        if isinstance(uri, LocalPath):
            return create_local(Path(uri.key), body)
        try:
            self.s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, ContentType=content_type, IfNoneMatch="*",
                               **self.encryption)  # fmt: skip
        except Exception as error:  # botocore's ClientError, without importing botocore here
            code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise
        return True

    def delete(self, uri: Location) -> None:
        if isinstance(uri, LocalPath):
            Path(uri.key).unlink(missing_ok=True)
            return
        self.s3.delete_object(Bucket=uri.bucket, Key=uri.key)

    def list_sizes(self, prefix: Location, last: str | None = None) -> dict[str, int]:
        """Keys (S3) or paths (local) under ``prefix`` with their sizes."""
        if isinstance(prefix, LocalPath):
            return list_local_sizes(prefix.key)
        return list_sizes(self.s3, prefix.bucket, prefix.key, last)


def create_local(path: Path, body: bytes) -> bool:
    """O_EXCL as a whole file: written aside, then linked into place (link fails if the name is taken)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.write_bytes(body)
    try:
        os.link(partial, path)
    except FileExistsError:
        return False
    finally:
        partial.unlink(missing_ok=True)
    return True


def list_local_sizes(prefix: str) -> dict[str, int]:
    """Files whose path starts with ``prefix``, as S3 lists keys: a directory prefix lists its whole tree."""
    directory = prefix if prefix.endswith("/") else os.path.dirname(prefix) or "."
    sizes: dict[str, int] = {}
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if path.startswith(prefix):
                try:
                    sizes[path] = os.path.getsize(path)
                except FileNotFoundError:  # removed while listed (another process's partial file, say)
                    continue
    return sizes


def list_sizes(s3: Any, bucket: str, prefix: str, last: str | None = None) -> dict[str, int]:
    """Keys under ``prefix`` with their sizes, 1,000 per call; stops once past ``last``."""
    sizes: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        contents = page.get("Contents", [])
        sizes.update((item["Key"], item["Size"]) for item in contents)
        if last is not None and contents and contents[-1]["Key"] > last:
            break
    return sizes


def read_s3_text(s3: Any, uri: S3Uri) -> str:
    return s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read().decode("utf-8")
