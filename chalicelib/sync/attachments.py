"""Downloads the files customers send (images, video, audio, documents) so they can be
attached to the ticket: a platform's CDN link expires within hours or days, a copy in
the helpdesk does not.

Where each platform keeps the file (``Attachment`` on ``SocialMessage.attachments``):

* Facebook, Messenger, Instagram, X, Standard Webhooks sources: a CDN ``url``, fetched
  without credentials;
* WhatsApp: a ``media_id``. ``GET {META_GRAPH_URL}/{version}/{media-id}`` (bearer
  ``WHATSAPP_ACCESS_TOKEN``) answers ``{url, mime_type, sha256, file_size}``; the ``url``
  (valid for minutes) is downloaded with the same bearer token;
* Telegram: the ``file_id`` as ``media_id``. ``GET {TELEGRAM_API_URL}/bot<token>/getFile
  ?file_id=`` answers ``file_path``, downloaded from ``{TELEGRAM_API_URL}/file/bot<token>/
  <file_path>``. The Bot API serves files up to 20 MB only;
* LINE: the message id as ``media_id``. ``GET {LINE_DATA_API_URL}/v2/bot/message/{id}/
  content`` with bearer ``LINE_CHANNEL_ACCESS_TOKEN`` (content from an external provider
  comes as a ``url`` and is fetched like a CDN link).

``AttachmentFetcher.fetch(message)`` never raises: every file it could not get becomes a
*problem*, one plain-words line for the agent ("⚠ The customer's image could not be
attached: the link had expired (HTTP 403). Open the post to see it."), so the message
text always reaches the ticket.

Safety:

* links from a payload are untrusted. Only ``https`` is fetched, and the host name is
  resolved first: if any of its addresses is not a public one (private, loopback,
  link-local, reserved...), nothing is fetched. The connection then goes to the very
  address that was checked (TLS still verifies the host name), so a DNS answer that
  changes between the check and the connection cannot redirect the request inside the
  network. Every redirect is checked the same way. ``allow_localhost`` (env
  ``ATTACHMENT_ALLOW_LOCALHOST``; local runs and tests only) additionally admits plain
  ``http`` and loopback addresses -- never other private ranges;
* platform API base URLs (``META_GRAPH_URL``, ``TELEGRAM_API_URL``, ``LINE_DATA_API_URL``)
  are configuration, hence trusted, but credentials are only sent over ``https`` (or
  plain ``http`` to a loopback sandbox);
* a bearer token is never sent to another origin than the one it is meant for, so it
  is dropped when a download is redirected elsewhere;
* downloads are streamed and stop as soon as they pass the size limit (the
  ``Content-Length`` is checked first when there is one); each file and the whole
  message also have a time budget;
* neither URLs (the Telegram one holds the bot token) nor file bytes are ever logged
  or put in a problem text.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import mimetypes
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
from urllib3 import exceptions as u3

from chalicelib.channels.registry import channel_of, platform_label
from chalicelib.models import Attachment, Platform, SocialMessage

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# Zendesk takes files up to 50 MB; 20 MB keeps a Lambda's memory comfortable and
# matches what the Telegram Bot API lets a bot download anyway.
DEFAULT_MAX_FILE_BYTES = 20 * MIB
DEFAULT_MAX_TOTAL_BYTES = 40 * MIB
DEFAULT_MAX_FILES = 10
DEFAULT_TIMEOUT = (3.05, 10.0)  # connect, each read (seconds)
DEFAULT_FILE_SECONDS = 60.0  # one file, all its requests and redirects included
DEFAULT_MESSAGE_SECONDS = 120.0  # every file of one message
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
API_ANSWER_MAX_BYTES = 1 * MIB  # a JSON answer of a platform API

USER_AGENT = "socialdesk-attachments (+urllib3)"

# Attachment types that are a link to something (a shared post, a map, a template),
# not a file: they stay links in the comment and are never downloaded.
LINK_TYPES = frozenset(
    {"fallback", "share", "template", "location", "story_mention", "reel", "ig_reel", "link", "contacts", "post", "url"}
)
# How each attachment type reads in a note ("the customer's <word>").
_TYPE_WORDS = {
    "image": "image",
    "photo": "image",
    "sticker": "sticker",
    "video": "video",
    "animated_gif": "animation",
    "gif": "animation",
    "audio": "audio message",
    "voice": "voice message",
    "file": "file",
    "document": "file",
}
_GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", "application/unknown", ""})
# Extensions mimetypes gets "wrong" for people (".jpe" for JPEG...).
_PREFERRED_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/aac": ".aac",
    "audio/mp4": ".m4a",
    "audio/amr": ".amr",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "application/octet-stream": ".bin",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
_FILE_NAME_LIKE = re.compile(r"^[^/\\\n]{1,150}\.[A-Za-z0-9]{1,8}$")
FILENAME_MAX = 100


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileToAttach:
    """One downloaded file. ``kind`` is the attachment type it came from (``image``...)."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)
    kind: str = "file"

    @property
    def size(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:  # never the bytes
        return f"FileToAttach({self.filename!r}, {self.content_type!r}, {self.size} bytes)"


@dataclass
class FetchedFiles:
    """What ``fetch`` got: the files, and one note per file it could not get."""

    files: list[FileToAttach] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class FetchProblem(Exception):
    """A file could not be fetched; ``reason`` completes "could not be attached: ..."."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TooBig(FetchProblem):
    """The file is over the byte limit it was fetched with (``size`` when known)."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__("it is too large")
        self.size = size
        self.limit = limit


# --- wording ---------------------------------------------------------------------------


def is_file_attachment(attachment: Attachment) -> bool:
    """True when the attachment is a file to download (not a shared link, map...)."""
    return attachment.type.strip().lower() not in LINK_TYPES


def type_word(attachment_type: str) -> str:
    """``image``, ``video``, ``voice message``...: how the file is called in a note."""
    return _TYPE_WORDS.get(attachment_type.strip().lower(), "file")


def human_size(size: int) -> str:
    """``31.5 MB``, ``512 KB``, ``12 bytes`` (binary units, as the limits are set)."""
    if size >= MIB:
        return f"{size / MIB:.1f}".rstrip("0").rstrip(".") + " MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def problem_note(message: SocialMessage, attachment_type: str, reason: str) -> str:
    """The line an agent reads under the comment text for a file that is not attached."""
    where = (
        "Open the post to see it."
        if message.permalink
        else f"See it in the {platform_label(message.platform)} conversation, or ask the customer to send it again."
    )
    return f"⚠ The customer's {type_word(attachment_type)} could not be attached: {reason}. {where}"


# --- file names and types ------------------------------------------------------------------


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def choose_content_type(response_type: str | None, declared: str | None, filename: str | None) -> str:
    """The response's ``Content-Type``; when it says nothing useful, the type the platform
    declared, then a guess from the file name, else ``application/octet-stream``."""
    for candidate in (_media_type(response_type), _media_type(declared)):
        if candidate not in _GENERIC_TYPES and "/" in candidate:
            return candidate
    guessed = mimetypes.guess_type(filename or "")[0] if filename else None
    return guessed or "application/octet-stream"


def extension_for(content_type: str) -> str:
    """A file extension for a media type (``.jpg`` for ``image/jpeg``), ``.bin`` if unknown."""
    media = _media_type(content_type)
    return _PREFERRED_EXTENSIONS.get(media) or mimetypes.guess_extension(media) or ".bin"


def _sanitize(name: str) -> str:
    name = unquote(name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _SAFE_NAME.sub("_", name).strip(" ._")
    if len(name) > FILENAME_MAX:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: FILENAME_MAX - len(ext) - 1] + dot + ext) if dot and len(ext) <= 8 else name[:FILENAME_MAX]
    return name


def _disposition_name(header: str | None) -> str | None:
    """The file name in a ``Content-Disposition`` header (``filename*`` preferred)."""
    if not header:
        return None
    star = re.search(r"filename\*\s*=\s*(?:[\w-]+)?'[^']*'([^;]+)", header, re.IGNORECASE)
    if star:
        return unquote(star.group(1).strip().strip('"'))
    plain = re.search(r'filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;]+)', header, re.IGNORECASE)
    if plain:
        return (plain.group(1) or plain.group(2) or "").strip()
    return None


def choose_filename(
    *,
    platform: Platform,
    attachment: Attachment,
    index: int,
    content_type: str,
    disposition: str | None = None,
    url: str | None = None,
) -> str:
    """A sensible file name with an extension matching ``content_type``.

    In order: the server's ``Content-Disposition``, a caption that is a file name
    (WhatsApp and LINE send the document's name there), the last segment of the
    download URL when it has an extension, else ``<platform>-<type>-<n>``. A name
    whose extension does not fit the content type gets the right one appended
    (Zendesk wants them to agree).
    """
    candidates = [_disposition_name(disposition)]
    if attachment.caption and _FILE_NAME_LIKE.match(attachment.caption.strip()):
        candidates.append(attachment.caption.strip())
    if url:
        candidates.append(urlsplit(url).path.rsplit("/", 1)[-1])
    for candidate in candidates:
        name = _sanitize(candidate or "")
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 1 <= len(ext) <= 8:
            guessed = mimetypes.guess_type(name)[0]
            if (
                guessed is None
                or _media_type(guessed) == _media_type(content_type)
                or _media_type(content_type) in _GENERIC_TYPES
            ):
                return name
            return name + extension_for(content_type)
    kind = _sanitize(attachment.type.lower()) or "file"
    return f"{platform.value}-{kind}-{index}{extension_for(content_type)}"


# --- the address policy ------------------------------------------------------------------


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (``getaddrinfo``)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    data: bytes
    url: str


def _env_flag(name: str) -> bool:
    return (os.environ.get(name) or "").strip().lower() in ("1", "true", "yes", "on")


def _env_int(name: str, default: int) -> int:
    value = (os.environ.get(name) or "").strip()
    return int(value) if value else default


# --- the fetcher -------------------------------------------------------------------------


class AttachmentFetcher:
    """Downloads a message's files within size, time and address limits.

    A file a platform sends as an id rather than a link is fetched the way its channel says
    (``Channel.fetch_media``: WhatsApp's media API, Telegram's ``getFile``, LINE's content
    API), with what ``_Downloads`` offers. ``secrets(name)`` returns a credential (or None)
    and is only called for a message that needs it. ``api_urls`` overrides platform API
    base URLs by setting name (``TELEGRAM_API_URL``...; else the environment, else the
    channel's default). ``resolver(host, port)`` returns the addresses of a host (tests
    inject one to check the private-address refusal); ``ca_certs`` replaces the system
    trust store (tests with their own CA).
    """

    def __init__(
        self,
        secrets: Callable[[str], str | None],
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
        allow_localhost: bool = False,
        api_urls: Mapping[str, str] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        file_seconds: float = DEFAULT_FILE_SECONDS,
        message_seconds: float = DEFAULT_MESSAGE_SECONDS,
        resolver: Callable[[str, int], list[str]] = system_resolver,
        ca_certs: str | None = None,
    ) -> None:
        if max_file_bytes <= 0 or max_total_bytes <= 0 or max_files <= 0:
            raise ValueError("attachment limits must be positive")
        self._secrets = secrets
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.max_files = max_files
        self.allow_localhost = allow_localhost
        self._api_urls = {name: self._api_base(url) for name, url in (api_urls or {}).items()}
        self._timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        self.file_seconds = file_seconds
        self.message_seconds = message_seconds
        self._resolve = resolver
        self._ca_certs = ca_certs  # None: the system's trust store (tests pass their own CA)

    @classmethod
    def from_env(cls, secrets: Callable[[str], str | None], **overrides: Any) -> AttachmentFetcher:
        """Limits from the environment: ``ATTACHMENT_MAX_BYTES`` (per file, default 20 MiB),
        ``ATTACHMENT_MAX_TOTAL_BYTES`` (per message, default 40 MiB), ``ATTACHMENT_MAX_FILES``
        (default 10), ``ATTACHMENT_ALLOW_LOCALHOST`` (local runs and tests only)."""
        settings: dict[str, Any] = {
            "max_file_bytes": _env_int("ATTACHMENT_MAX_BYTES", DEFAULT_MAX_FILE_BYTES),
            "max_total_bytes": _env_int("ATTACHMENT_MAX_TOTAL_BYTES", DEFAULT_MAX_TOTAL_BYTES),
            "max_files": _env_int("ATTACHMENT_MAX_FILES", DEFAULT_MAX_FILES),
            "allow_localhost": _env_flag("ATTACHMENT_ALLOW_LOCALHOST"),
        }
        settings.update(overrides)
        return cls(secrets, **settings)

    def api_url(self, setting: str, default: str) -> str:
        """A platform API's base URL: the override, else the environment, else ``default``
        (https only, but for a local sandbox)."""
        return self._api_urls.get(setting) or self._api_base(os.environ.get(setting) or default)

    def __repr__(self) -> str:
        return f"AttachmentFetcher(max_file_bytes={self.max_file_bytes}, max_total_bytes={self.max_total_bytes})"

    @staticmethod
    def _api_base(url: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"not an absolute http(s) URL: {url!r}")
        if parts.scheme == "http" and not _is_loopback_host(parts.hostname):
            raise ValueError(f"refusing to send platform credentials over plain http to {parts.hostname}")
        return url.strip().rstrip("/")

    # --- entry point -------------------------------------------------------------------

    def fetch(self, message: SocialMessage) -> FetchedFiles:
        """Download every file of ``message``; never raises (failures become problems)."""
        result = FetchedFiles()
        started = time.monotonic()
        total = 0
        files = [a for a in message.attachments if is_file_attachment(a)]
        for index, attachment in enumerate(files, start=1):
            if index > self.max_files:
                result.problems.append(
                    problem_note(message, attachment.type, f"only the first {self.max_files} files of a message are attached")
                )
                continue
            remaining_bytes = self.max_total_bytes - total
            remaining_time = self.message_seconds - (time.monotonic() - started)
            limit = min(self.max_file_bytes, remaining_bytes)
            try:
                if remaining_bytes <= 0:
                    raise TooBig(None, 0)
                if remaining_time <= 0:
                    raise FetchProblem("there was no time left to download it")
                deadline = time.monotonic() + min(self.file_seconds, remaining_time)
                fetched = self._fetch_one(message, attachment, index, limit, deadline)
            except TooBig as problem:
                if limit < self.max_file_bytes and (problem.size is None or problem.size <= self.max_file_bytes):
                    reason = f"the message's files together are over the {human_size(self.max_total_bytes)} limit"
                elif problem.size is None:
                    reason = f"it is larger than the {human_size(self.max_file_bytes)} limit"
                else:
                    reason = f"it is too large ({human_size(problem.size)}; the limit is {human_size(self.max_file_bytes)})"
                self._log(message, attachment, "too_big")
                result.problems.append(problem_note(message, attachment.type, reason + self._link_hint(attachment)))
            except FetchProblem as problem:
                self._log(message, attachment, type(problem).__name__, problem.status)
                result.problems.append(problem_note(message, attachment.type, problem.reason))
            except Exception:  # a bug must not cost the message its text
                logger.exception("attachment fetch failed unexpectedly", extra={"platform": message.platform.value})
                result.problems.append(problem_note(message, attachment.type, "an unexpected error stopped the download"))
            else:
                total += fetched.size
                result.files.append(fetched)
        return result

    @staticmethod
    def _link_hint(attachment: Attachment) -> str:
        # A file too big to copy can still be opened by the agent while the link lasts.
        return f" (link, which may expire: {attachment.url})" if attachment.url and attachment.url.startswith("https://") else ""

    @staticmethod
    def _log(message: SocialMessage, attachment: Attachment, what: str, status: int | None = None) -> None:
        logger.warning(
            "attachment not attached",
            extra={"platform": message.platform.value, "type": attachment.type, "problem": what, "status": status},
        )

    # --- one file ----------------------------------------------------------------------

    def _fetch_one(self, message: SocialMessage, attachment: Attachment, index: int, limit: int, deadline: float) -> FileToAttach:
        platform = message.platform
        downloads = _Downloads(self, platform, limit, deadline)
        fetched = channel_of(platform).fetch_media(attachment, platform, downloads)
        if fetched is not None:
            response, declared = fetched
        elif attachment.url:
            response = self._download(attachment.url, limit=limit, deadline=deadline, platform=platform)
            declared = attachment.mime_type
        else:
            raise FetchProblem(f"{platform_label(platform)} sent no link to it")
        declared = declared or attachment.mime_type
        content_type = choose_content_type(response.headers.get("content-type"), declared, attachment.caption)
        if content_type.startswith("text/html") and type_word(attachment.type) != "file":
            # A CDN answering an expired link with a sign-in or error page.
            raise FetchProblem("the link no longer leads to the file")
        if not response.data:
            raise FetchProblem("the download was empty")
        # (For Telegram only the file_path's last segment is used, never the token part.)
        filename = choose_filename(
            platform=platform,
            attachment=attachment,
            index=index,
            content_type=content_type,
            disposition=response.headers.get("content-disposition"),
            url=response.url,
        )
        return FileToAttach(filename=filename, content_type=content_type, data=response.data, kind=attachment.type)

    def _token(self, platform: Platform, secret_name: str) -> str:
        try:
            token = (self._secrets(secret_name) or "").strip()
        except Exception:  # NotConfigured, a parameter store failure...
            token = ""
        if not token:
            logger.warning("no access token configured for attachments", extra={"platform": platform.value})
            raise FetchProblem(f"the bridge has no {platform_label(platform)} access configured to download it")
        return token

    def _api_json(
        self,
        url: str,
        headers: Mapping[str, str],
        deadline: float,
        *,
        platform: Platform,
        explain: Callable[[int, Any], None] | None = None,
    ) -> Any:
        label = platform_label(platform)
        response = self._request(url, dict(headers), limit=API_ANSWER_MAX_BYTES, deadline=deadline, trusted=True)
        try:
            data = json.loads(response.data) if response.data else None
        except ValueError:
            data = None
        if explain is not None:  # the platform's own error words, before the generic ones
            explain(response.status, data)
        if response.status != 200:
            raise self._status_problem(response.status, platform, api=True)
        if not isinstance(data, dict):
            raise FetchProblem(f"{label} gave an answer the bridge could not read")
        return data

    @staticmethod
    def _status_problem(status: int, platform: Platform, *, api: bool) -> FetchProblem:
        label = platform_label(platform)
        if status in (404, 410):
            return FetchProblem(
                (f"{label} no longer has the file" if api else "the link had expired") + f" (HTTP {status})", status=status
            )
        if status in (401, 403):
            if api:
                return FetchProblem(f"{label} refused the download (HTTP {status})", status=status)
            if status == 401:  # e.g. X direct-message media, which needs the account's sign-in
                return FetchProblem("the link needs a sign-in the bridge does not have (HTTP 401)", status=status)
            # CDNs (Meta's signed URLs, X) answer 403 once a link's signature has expired.
            return FetchProblem(f"the link had expired (HTTP {status})", status=status)
        if 200 <= status < 300:
            return FetchProblem(f"{label} had not finished preparing it (HTTP {status})", status=status)
        if status == 429:
            return FetchProblem(f"{label} limited how fast files can be downloaded (HTTP 429)", status=status)
        return FetchProblem(f"{label} answered with an error (HTTP {status})", status=status)

    # --- HTTP --------------------------------------------------------------------------

    def _download(
        self,
        url: str,
        *,
        limit: int,
        deadline: float,
        platform: Platform,
        headers: dict[str, str] | None = None,
        trusted: bool = False,
    ) -> _Response:
        response = self._request(url, headers or {}, limit=limit, deadline=deadline, trusted=trusted)
        if response.status != 200:
            raise self._status_problem(response.status, platform, api=trusted)
        return response

    def _request(
        self,
        url: str,
        headers: dict[str, str],
        *,
        limit: int,
        deadline: float,
        trusted: bool,
    ) -> _Response:
        """GET ``url``, following redirects (each one checked), reading at most ``limit`` bytes.

        ``trusted``: the first URL comes from configuration (a platform API), so its
        address is not checked; redirects away from its origin are checked like any link.
        """
        origin = _origin(url)
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            same_origin = _origin(current) == origin
            sent = dict(headers) if same_origin else {k: v for k, v in headers.items() if k.lower() != "authorization"}
            response = self._get_once(current, sent, limit=limit, deadline=deadline, trusted=trusted and same_origin)
            if response.status in (301, 302, 303, 307, 308) and response.headers.get("location"):
                current = urljoin(current, response.headers["location"])
                continue
            return response
        raise FetchProblem("the link redirected too many times")

    def _check_url(self, url: str, *, trusted: bool) -> tuple[str, str, int, list[str]]:
        """``(scheme, host, port, addresses to connect to)`` or a ``FetchProblem``.

        IPv4 addresses come first: a Lambda outside a VPC has no IPv6 route."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            raise FetchProblem("the link is not a valid web address")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise FetchProblem("the link is not a valid web address") from None
        local_ok = trusted or self.allow_localhost
        if parts.scheme != "https" and not (parts.scheme == "http" and local_ok and _is_loopback_host(host)):
            raise FetchProblem("the link is not a secure (https) web address")
        try:
            addresses = self._resolve(host, port)
        except (OSError, UnicodeError):
            raise FetchProblem("the link's server could not be found") from None
        if not addresses:
            raise FetchProblem("the link's server could not be found")
        checked = []
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                raise FetchProblem("the link's server could not be found") from None
            if not (trusted or _is_public(address) or (self.allow_localhost and address.is_loopback)):
                logger.warning("attachment link refused: not a public address", extra={"host": host})
                raise FetchProblem("the link points to a private network address, which the bridge does not fetch from")
            checked.append(address)
        checked.sort(key=lambda a: a.version)
        return parts.scheme, host, port, [str(a) for a in checked]

    def _get_once(self, url: str, headers: dict[str, str], *, limit: int, deadline: float, trusted: bool) -> _Response:
        scheme, host, port, addresses = self._check_url(url, trusted=trusted)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = 443 if scheme == "https" else 80
        sent = {
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            **headers,
            "Host": host if port == default_port else f"{host}:{port}",
        }
        for position, address in enumerate(addresses):
            if time.monotonic() >= deadline:
                raise FetchProblem("the download took too long")
            try:
                return self._get_from(address, scheme, host, port, target, sent, url, limit=limit, deadline=deadline)
            except (u3.NewConnectionError, u3.ConnectTimeoutError):
                if position + 1 == len(addresses):
                    raise FetchProblem("the link's server could not be reached") from None
        raise FetchProblem("the link's server could not be found")

    def _get_from(
        self,
        address: str,
        scheme: str,
        host: str,
        port: int,
        target: str,
        sent: dict[str, str],
        url: str,
        *,
        limit: int,
        deadline: float,
    ) -> _Response:
        """One GET to one checked address. Connection failures propagate (the caller
        tries the next address); every other failure is a ``FetchProblem``."""
        pool: urllib3.HTTPConnectionPool
        if scheme == "https":
            # Connect to the checked address; the certificate is still verified for the name.
            pool = urllib3.HTTPSConnectionPool(
                address,
                port,
                server_hostname=host,
                assert_hostname=host,
                cert_reqs="CERT_REQUIRED",
                ca_certs=self._ca_certs,
                timeout=self._timeout,
                retries=False,
                maxsize=1,
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=self._timeout, retries=False, maxsize=1)
        raw = None
        try:
            try:
                raw = pool.urlopen(
                    "GET",
                    target,
                    headers=sent,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    assert_same_host=False,
                    timeout=self._timeout,
                )
            except (u3.NewConnectionError, u3.ConnectTimeoutError):
                raise
            except u3.ReadTimeoutError:
                raise FetchProblem("the download timed out") from None
            except (u3.SSLError, u3.ProxyError):
                raise FetchProblem("a secure connection to the link's server failed") from None
            except (u3.HTTPError, OSError):
                raise FetchProblem("the connection broke during the download") from None
            response_headers = {str(k).lower(): str(v) for k, v in raw.headers.items()}
            status = int(raw.status)
            if status != 200:
                # Error and redirect bodies are small or irrelevant: read a little for JSON errors.
                body = self._read(raw, API_ANSWER_MAX_BYTES, deadline, quiet=True)
                return _Response(status, response_headers, body, url)
            length = as_int(response_headers.get("content-length"))
            if length is not None and length > limit:
                raise TooBig(length, limit)
            body = self._read(raw, limit, deadline)
            return _Response(status, response_headers, body, url)
        finally:
            if raw is not None:
                raw.release_conn()
            pool.close()

    def _read(self, raw: Any, limit: int, deadline: float, *, quiet: bool = False) -> bytes:
        """The body, streamed: stops reading past ``limit`` or ``deadline``."""
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in raw.stream(CHUNK_BYTES, decode_content=True):
                size += len(chunk)
                if size > limit:
                    if quiet:
                        break
                    raise TooBig(None, limit)
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    if quiet:
                        break
                    raise FetchProblem("the download took too long")
        except u3.ReadTimeoutError:
            if quiet:
                return b"".join(chunks)
            raise FetchProblem("the download timed out") from None
        except (u3.HTTPError, OSError):
            if quiet:
                return b"".join(chunks)
            raise FetchProblem("the connection broke during the download") from None
        return b"".join(chunks)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def as_int(value: Any) -> int | None:
    """A platform's number (``"1234"``, ``1234``) as an int; None when it is not one."""
    try:
        return int(str(value).strip()) if value is not None and str(value).strip() else None
    except ValueError:
        return None


class _Downloads:
    """What a channel's ``fetch_media`` gets: this fetcher's requests, bound to one file's
    platform, byte limit and deadline (``chalicelib.channels.base.MediaDownloads``)."""

    def __init__(self, fetcher: AttachmentFetcher, platform: Platform, limit: int, deadline: float) -> None:
        self._fetcher, self._platform, self.limit, self._deadline = fetcher, platform, limit, deadline

    def download(self, url: str, *, headers: Mapping[str, str] | None = None, trusted: bool = False) -> _Response:
        return self._fetcher._download(
            url, limit=self.limit, deadline=self._deadline, platform=self._platform, headers=dict(headers or {}), trusted=trusted
        )

    def api_json(
        self, url: str, *, headers: Mapping[str, str] | None = None, explain: Callable[[int, Any], None] | None = None
    ) -> Any:
        return self._fetcher._api_json(url, headers or {}, self._deadline, platform=self._platform, explain=explain)

    def token(self, secret_name: str) -> str:
        return self._fetcher._token(self._platform, secret_name)

    def api_url(self, setting: str, default: str) -> str:
        return self._fetcher.api_url(setting, default)
