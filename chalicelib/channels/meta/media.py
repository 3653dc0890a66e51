"""WhatsApp media: a message carries a media id; the file is behind the Graph API."""

from __future__ import annotations

import hashlib
import os
from typing import Any
from urllib.parse import quote

from chalicelib.channels.base import MediaDownloads
from chalicelib.sync.attachments import FetchProblem, TooBig, as_int


def whatsapp_media(media_id: str, downloads: MediaDownloads) -> tuple[Any, str | None]:
    """``GET /{media id}`` for the file's URL, size and checksum, then the file itself (both
    with the access token), checked against the size limit and the checksum."""
    from chalicelib.channels.meta import DEFAULT_GRAPH_URL, DEFAULT_GRAPH_VERSION

    auth = {"Authorization": f"Bearer {downloads.token('WHATSAPP_ACCESS_TOKEN')}"}
    base = downloads.api_url("META_GRAPH_URL", DEFAULT_GRAPH_URL)
    version = (os.environ.get("META_GRAPH_VERSION") or DEFAULT_GRAPH_VERSION).strip("/")
    answer = downloads.api_json(f"{base}/{version}/{quote(media_id, safe='')}", headers=auth)
    media_url = answer.get("url") if isinstance(answer, dict) else None
    if not isinstance(media_url, str) or not media_url:
        raise FetchProblem("WhatsApp did not say where the file is")
    size = as_int(answer.get("file_size"))
    if size is not None and size > downloads.limit:
        raise TooBig(size, downloads.limit)
    # Meta: the media URL is downloaded with the same access token.
    response = downloads.download(media_url, headers=auth)
    expected = answer.get("sha256")
    if isinstance(expected, str) and len(expected) == 64 and hashlib.sha256(response.data).hexdigest() != expected.lower():
        raise FetchProblem("the download was damaged (checksum mismatch)")
    mime = answer.get("mime_type")
    return response, mime if isinstance(mime, str) else None
