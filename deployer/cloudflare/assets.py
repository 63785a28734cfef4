"""Workers Static Assets uploads (reference §7.6): the upload session, and the buckets of files
Cloudflare lacks, sent in parallel under the session's token instead of the API credentials.

Both tokens are ``Secret``s from the moment they arrive, so no message or log shows them.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from deployer.apply.upload import UploadPart
from deployer.cloudflare.transport import Transport, malformed, result_object, segment
from deployer.models import Secret

ReadBucket = Callable[[Sequence[str]], Sequence[UploadPart]]


class AssetsApi(Transport):
    _bucket_slots: threading.BoundedSemaphore | None = None

    def start_assets_session(self, account_id: str, script_name: str, manifest: bytes
                             ) -> tuple[Secret, list[list[str]]]:
        """Open an upload session for ``manifest`` (the canonical JSON ``{"/path": {"hash",
        "size"}}``): its token and the buckets of hashes Cloudflare lacks. No bucket: the token
        already completes the session."""
        path = f"/accounts/{segment(account_id)}/workers/scripts/{segment(script_name)}/assets-upload-session"
        body = self._request("POST", path, data=b'{"manifest":' + manifest + b"}",
                             headers={"Content-Type": "application/json"})
        result = result_object(body, "POST", path, ("jwt",))
        buckets = result.get("buckets") or []
        if not isinstance(buckets, list) or not all(
                isinstance(bucket, list) and all(isinstance(h, str) for h in bucket) for bucket in buckets):
            raise malformed("POST", path, "its buckets are not lists of file hashes")
        return Secret(str(result["jwt"])), [list(bucket) for bucket in buckets if bucket]

    def upload_asset_buckets(self, account_id: str, session: Secret, buckets: Sequence[Sequence[str]],
                             read: ReadBucket) -> Secret:
        """Upload every bucket (``read`` gives its parts), in parallel on at most as many
        connections as the client pools, all clients' buckets together; returns the completion
        token the last one answers with. On the first failure no further bucket starts and the
        error is raised once those under way have finished."""
        path = f"/accounts/{segment(account_id)}/workers/assets/upload"
        slots = self._slots()
        completions: list[Secret] = []

        def upload(hashes: Sequence[str]) -> None:
            with slots:
                parts = read(hashes)
                files = [(part.name, (part.name, part.data, part.content_type)) for part in parts]
                body = self._request("POST", path, params={"base64": "true"}, files=files, bearer=session)
            token = result_object(body, "POST", path, (), optional=True).get("jwt")
            if isinstance(token, str) and token:
                completions.append(Secret(token))

        with ThreadPoolExecutor(max_workers=max(1, min(self._pool_size, len(buckets))),
                                thread_name_prefix="deployer-assets") as pool:
            futures: list[Future[None]] = [pool.submit(upload, bucket) for bucket in buckets]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            error = next((e for f in futures if f in done and (e := f.exception()) is not None), None)
            if error is not None:
                for future in futures:
                    future.cancel()
                wait(futures)
                raise error
        if not completions:
            raise malformed("POST", path, "no answer carried the completion token (jwt) after the last bucket")
        return completions[-1]

    def _slots(self) -> threading.BoundedSemaphore:
        with self._lock:
            if self._bucket_slots is None:
                self._bucket_slots = threading.BoundedSemaphore(self._pool_size)
            return self._bucket_slots

