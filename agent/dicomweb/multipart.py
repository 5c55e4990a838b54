"""Reading a `multipart/related` body (RFC 2046, RFC 2387) as it arrives, part by part.

A STOW-RS request carries one DICOM file per part and may be hundreds of megabytes long, so
the body is never held whole: `MultipartReader.feed` takes the bytes as they come off the
socket and returns each part as soon as its closing delimiter has arrived. Only the part
being received is buffered.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from agent.errors import AgentError

CRLF = b"\r\n"
HEADER_END = b"\r\n\r\n"
MAX_HEADER_BYTES = 16 * 1024
MAX_BOUNDARY = 256
"""RFC 2046 allows 70 characters; Orthanc's DICOMweb client sends 73. Be liberal, within reason."""


class MultipartError(AgentError):
    """The body is not a well-formed multipart message."""


@dataclass(frozen=True)
class MediaType:
    """A Content-Type value: its type (lower case) and parameters (names lower case)."""

    type: str
    parameters: dict[str, str]

    @classmethod
    def parse(cls, value: str) -> MediaType:
        message = Message()
        message["Content-Type"] = value
        found = message.get_params(header="Content-Type") or []
        parameters = {name.lower(): str(text) for name, text in found[1:]}
        return cls(message.get_content_type().lower(), parameters)


class MultipartReader:
    """Feed it the body in chunks; it hands back the complete parts' bodies in order (their
    headers are skipped: a STOW-RS part is whatever its bytes turn out to be).

    The body is read as if it started with a line break, so that every delimiter, the first
    included, is CRLF "--" boundary; what comes before the first one (the preamble) and after
    the closing one (the epilogue) is ignored, as RFC 2046 asks.
    """

    def __init__(self, boundary: str) -> None:
        if not boundary or len(boundary) > MAX_BOUNDARY:
            raise MultipartError("the Content-Type has no usable boundary parameter")
        self._delimiter = CRLF + b"--" + boundary.encode("latin-1")
        self._buffer = bytearray(CRLF)
        self._searched = 0  # the buffer before this offset holds no delimiter start
        self._in_part = False  # past the first delimiter
        self._closed = False  # the closing delimiter seen

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._closed:
            return []
        self._buffer += chunk
        parts = []
        while not self._closed:
            found = self._buffer.find(self._delimiter, self._searched)
            if found < 0:
                self._searched = max(len(self._buffer) - len(self._delimiter) + 1, 0)
                break
            after = found + len(self._delimiter)
            if len(self._buffer) < after + 2:  # cannot yet tell "--" (the end) from a line break
                self._searched = found
                break
            if self._in_part:
                parts.append(_body(bytes(self._buffer[:found])))
            self._closed = self._buffer[after : after + 2] == b"--"
            self._in_part = True
            del self._buffer[:after]
            self._searched = 0
        return parts

    def finish(self) -> None:
        """Raise if the body ended before its closing delimiter."""
        if not self._closed:
            what = "part" if self._in_part else "delimiter"
            raise MultipartError(f"the body ended inside a {what}: no closing delimiter")


def _body(raw: bytes) -> bytes:
    """The body of a part as it follows its delimiter: transport padding and a line break,
    headers (none, or lines ending in a blank one), the body."""
    line_end = raw.find(CRLF)
    if line_end < 0 or raw[:line_end].strip(b" \t"):
        raise MultipartError("a delimiter is followed by something other than a line break")
    header_start = line_end + len(CRLF)
    if raw.startswith(CRLF, header_start):  # no headers at all
        return raw[header_start + len(CRLF) :]
    header_end = raw.find(HEADER_END, header_start, header_start + MAX_HEADER_BYTES)
    if header_end < 0:
        raise MultipartError("a part has no blank line after its headers")
    return raw[header_end + len(HEADER_END) :]
