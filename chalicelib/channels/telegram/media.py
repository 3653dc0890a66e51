"""Telegram files: a message carries a ``file_id``; ``getFile`` says where the file is."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from chalicelib.channels.base import MediaDownloads
from chalicelib.sync.attachments import FetchProblem, TooBig, as_int


def telegram_file(file_id: str, downloads: MediaDownloads) -> tuple[Any, str | None]:
    """``getFile``, then the file from the bot API's file host (the token is in both URLs:
    only the file path's last segment ever names the file)."""
    from chalicelib.channels.telegram import DEFAULT_API_URL

    base = downloads.api_url("TELEGRAM_API_URL", DEFAULT_API_URL)
    token = quote(downloads.token("TELEGRAM_BOT_TOKEN"), safe=":")
    answer = downloads.api_json(f"{base}/bot{token}/getFile?file_id={quote(file_id, safe='')}", explain=_explain)
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, dict) or not isinstance(result.get("file_path"), str) or not result["file_path"]:
        raise FetchProblem("Telegram did not say where the file is")
    path = result["file_path"]
    size = as_int(result.get("file_size"))
    if size is not None and size > downloads.limit:
        raise TooBig(size, downloads.limit)
    return downloads.download(f"{base}/file/bot{token}/{quote(path, safe='/')}", trusted=True), None


def _explain(status: int, answer: Any) -> None:
    """Telegram's own reasons (``{"ok": false, "description": ...}``) in plain words."""
    if not isinstance(answer, dict) or answer.get("ok") is not False:
        return
    description = str(answer.get("description") or "").lower()
    if "too big" in description:
        raise FetchProblem("it is larger than the 20 MB Telegram lets bots download")
    if "not found" in description or "invalid file_id" in description or "wrong file_id" in description:
        raise FetchProblem(f"Telegram no longer has the file (HTTP {status})", status=status)
