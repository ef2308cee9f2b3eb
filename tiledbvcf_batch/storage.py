"""S3 locations, and the object store the run's manifests and records go to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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


def parse_s3_uri(text: str, what: str, *, need_key: bool = True) -> S3Uri:
    """Parse ``s3://bucket/key``; raise ValueError with a message that says how to fix it."""
    if CONTROL_CHARS.search(text):
        raise ValueError(f"{what} {text!r} contains a control character (newline, tab, NUL...)")
    if not text.startswith("s3://"):
        raise ValueError(f"{what} {text!r} is not an S3 URI: write it as s3://bucket/path")
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
    """Where a run's small files live: reads, encrypted writes, deletes and listings."""

    s3: Any
    encryption: dict[str, str] = field(default_factory=lambda: encryption_args(None))

    def read_text(self, uri: S3Uri) -> str:
        return read_s3_text(self.s3, uri)

    def put(self, uri: S3Uri, body: bytes, content_type: str = "text/plain") -> None:
        self.s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, ContentType=content_type, **self.encryption)

    def delete(self, uri: S3Uri) -> None:
        self.s3.delete_object(Bucket=uri.bucket, Key=uri.key)

    def list_sizes(self, prefix: S3Uri, last: str | None = None) -> dict[str, int]:
        return list_sizes(self.s3, prefix.bucket, prefix.key, last)


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
