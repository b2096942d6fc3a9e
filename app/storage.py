"""Object storage: S3/MinIO through boto3, or a local directory store.

boto3 is synchronous, so callers run these methods in a worker thread.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlencode

import boto3
from botocore.client import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from app.settings import Settings


class StorageError(RuntimeError):
    pass


class Storage(Protocol):
    kind: str

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, bucket: str, key: str, max_bytes: int) -> bytes: ...
    def delete(self, bucket: str, key: str) -> None: ...
    def presigned_url(self, bucket: str, key: str, expires: int, base_url: str) -> str: ...
    def check(self, bucket: str) -> bool: ...


class S3Storage:
    kind = "s3"

    def __init__(self, settings: Settings) -> None:
        common = {
            "region_name": settings.s3_region,
            "aws_access_key_id": settings.s3_access_key,
            "aws_secret_access_key": settings.s3_secret_key,
            "config": BotoConfig(
                signature_version="s3v4",
                s3={"addressing_style": "path" if settings.s3_endpoint else "auto"},
                connect_timeout=3,
                read_timeout=10,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        }
        self.client = boto3.client("s3", endpoint_url=settings.s3_endpoint, **common)
        # Presigned URLs must name a host the client can reach.
        public = settings.s3_public_endpoint or settings.s3_endpoint
        self.presign_client = (
            self.client
            if public == settings.s3_endpoint
            else boto3.client("s3", endpoint_url=public, **common)
        )

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"could not store object: {exc}") from exc

    def get(self, bucket: str, key: str, max_bytes: int) -> bytes:
        """The object's bytes (at most max_bytes + 1: enough to tell it is too large).
        FileNotFoundError when it does not exist, StorageError when the store fails."""
        try:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                return body.read(max_bytes + 1)
            finally:
                body.close()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from exc
            raise StorageError(f"could not read object: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not read object: {exc}") from exc

    def delete(self, bucket: str, key: str) -> None:
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"could not delete object: {exc}") from exc

    def presigned_url(self, bucket: str, key: str, expires: int, base_url: str) -> str:
        return self.presign_client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )

    def check(self, bucket: str) -> bool:
        try:
            self.client.head_bucket(Bucket=bucket)
            return True
        except (BotoCoreError, ClientError):
            return False


class LocalStorage:
    """Objects as files under ``DATA_DIR/storage/<bucket>/``; URLs are HMAC-signed."""

    kind = "local"

    def __init__(self, root: Path, signing_key: bytes) -> None:
        self.root = root
        self.signing_key = signing_key

    def _path(self, bucket: str, key: str) -> Path:
        base = (self.root / bucket).resolve()
        path = (base / key).resolve()
        if base not in path.parents:
            raise StorageError("invalid object key")
        return path

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)

    def read(self, bucket: str, key: str) -> bytes:
        path = self._path(bucket, key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path.read_bytes()

    def get(self, bucket: str, key: str, max_bytes: int) -> bytes:
        with self._path(bucket, key).open("rb") as file:
            return file.read(max_bytes + 1)

    def delete(self, bucket: str, key: str) -> None:
        self._path(bucket, key).unlink(missing_ok=True)

    def signature(self, bucket: str, key: str, expires_at: int) -> str:
        message = f"{bucket}\n{key}\n{expires_at}".encode()
        return hmac.new(self.signing_key, message, hashlib.sha256).hexdigest()

    def verify(self, bucket: str, key: str, expires_at: int, signature: str) -> bool:
        if expires_at < time.time():
            return False
        return hmac.compare_digest(self.signature(bucket, key, expires_at), signature)

    def presigned_url(self, bucket: str, key: str, expires: int, base_url: str) -> str:
        expires_at = int(time.time()) + expires
        query = urlencode({"expires": expires_at, "signature": self.signature(bucket, key, expires_at)})
        return f"{base_url.rstrip('/')}/api/v1/files/{quote(bucket)}/{quote(key)}?{query}"

    def check(self, bucket: str) -> bool:
        try:
            (self.root / bucket).mkdir(parents=True, exist_ok=True)
            probe = self.root / bucket / ".probe"
            probe.write_bytes(b"ok")
            probe.unlink()
            return True
        except OSError:
            return False


def create_storage(settings: Settings) -> Storage:
    if settings.resolved_storage_backend == "s3":
        return S3Storage(settings)
    return LocalStorage(Path(settings.data_dir) / "storage", settings.signing_key)
