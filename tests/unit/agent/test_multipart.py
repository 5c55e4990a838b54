"""Reading multipart/related bodies as they arrive: parts whole, whatever the chunking."""

from __future__ import annotations

import pytest

from agent.dicomweb.client import multipart
from agent.dicomweb.multipart import MediaType, MultipartError, MultipartReader

BOUNDARY = "b0undary-42"
FILES = [b"first file", b"\r\n--b0undary-4 looks like a delimiter\r\n", b"", bytes(range(256)) * 40]


def read(body: bytes, chunk: int) -> list[bytes]:
    reader = MultipartReader(BOUNDARY)
    parts = []
    for start in range(0, len(body), chunk):
        parts += reader.feed(body[start : start + chunk])
    reader.finish()
    return parts


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 1 << 20])
def test_every_part_comes_back_whole_whatever_the_chunk_size(chunk: int) -> None:
    assert read(multipart(FILES, BOUNDARY), chunk) == FILES


def test_preamble_epilogue_padding_and_headerless_parts_are_read_as_rfc_2046_says() -> None:
    body = (
        b"a preamble to ignore\r\n"
        b"--b0undary-42  \r\nContent-Type: application/dicom\r\nX-Other: 1\r\n\r\none\r\n"
        b"--b0undary-42\r\n\r\ntwo\r\n"
        b"--b0undary-42--\r\nan epilogue to ignore"
    )
    assert read(body, 5) == [b"one", b"two"]


def test_nothing_is_returned_after_the_closing_delimiter() -> None:
    reader = MultipartReader(BOUNDARY)
    assert reader.feed(multipart([b"x"], BOUNDARY)) == [b"x"]
    assert reader.feed(b"\r\n--b0undary-42\r\n\r\nlate\r\n--b0undary-42--") == []


@pytest.mark.parametrize(
    "body, message",
    [
        (b"--b0undary-42\r\n\r\ncut short", "ended inside a part"),
        (b"no delimiter at all", "ended inside a delimiter"),
    ],
)
def test_a_body_without_its_closing_delimiter_is_refused(body: bytes, message: str) -> None:
    reader = MultipartReader(BOUNDARY)
    reader.feed(body)
    with pytest.raises(MultipartError, match=message):
        reader.finish()


@pytest.mark.parametrize(
    "body",
    [
        b"--b0undary-42garbage\r\n\r\nx\r\n--b0undary-42--",
        b"--b0undary-42\r\nContent-Type: application/dicom\r\nno blank line\r\n--b0undary-42--",
    ],
)
def test_a_malformed_part_is_refused(body: bytes) -> None:
    with pytest.raises(MultipartError):
        MultipartReader(BOUNDARY).feed(body)


@pytest.mark.parametrize("boundary", ["", "x" * 257])
def test_an_unusable_boundary_is_refused(boundary: str) -> None:
    with pytest.raises(MultipartError, match="boundary"):
        MultipartReader(boundary)


def test_media_type_parameters_are_case_insensitive_and_unquoted() -> None:
    media = MediaType.parse('Multipart/Related; TYPE="application/dicom"; boundary="a b:c"')
    assert media == MediaType(
        "multipart/related", {"type": "application/dicom", "boundary": "a b:c"}
    )
