"""The identifying and routing tags of a received instance, read cheaply.

Receivers read the header of every instance, so this keeps the work small: the raw values of
the tags named here are found by walking the bytes (`agent.dimse.header_scan`), or, for the
files that walk does not take on, by pydicom told to keep only these tags and to stop after
the last of them. Either way the values are decoded straight from the raw bytes (UIDs and
numbers as ASCII, text in the data set's Specific Character Set) rather than converted to
typed values one `Dataset.get` at a time, which costs more than the parsing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.filereader import read_partial
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import PN_DELIMS, TEXT_VR_DELIMS

from agent.dimse.header_scan import scan
from agent.errors import SopClassMismatchError, UnparsableInstanceError

LOGGER = logging.getLogger(__name__)

_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_TEXTS = (
    "Modality",
    "PatientID",
    "PatientName",
    "AccessionNumber",
    "StudyDate",
    "SeriesDescription",
    "SeriesNumber",
    "InstanceNumber",
)
# Plain ints, not pydicom's `BaseTag`: its comparisons run in Python, per element walked.
_TAGS = {keyword: int(Tag(keyword)) for keyword in (*_REQUIRED_UIDS, *_TEXTS)}
_LAST_TAG = max(_TAGS.values())
_CHARSET = int(Tag("SpecificCharacterSet"))
_WANTED = frozenset({*_TAGS.values(), _CHARSET})
_TRANSFER_SYNTAX = int(Tag("TransferSyntaxUID"))
_ANNOUNCED_CLASS = int(Tag("MediaStorageSOPClassUID"))
_ANNOUNCED_INSTANCE = int(Tag("MediaStorageSOPInstanceUID"))
_PERSON_NAMES = frozenset({"PatientName"})

Values = Mapping[int, bytes | str]
"""Element values by tag: raw bytes as stored, or text where pydicom already decoded them."""


@dataclass(frozen=True)
class InstanceHeader:
    """The identifying and routing tags of a received instance: `ReceivedInstance`'s tag part."""

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    transfer_syntax_uid: str
    modality: str
    patient_id: str
    patient_name: str
    accession_number: str
    study_date: str
    series_description: str
    series_number: int | None
    instance_number: int | None


def read_header(raw: bytes) -> InstanceHeader:
    """Read the header tags of a Part 10 file, parsing no further than the last of them.

    Raises `UnparsableInstanceError` when the file cannot be read, a UID is missing, or the
    dataset's UIDs differ from those announced in the file meta (the C-STORE request's).
    """
    return header_from(*(read_with_walk(raw) or read_with_pydicom(raw)))


def read_with_walk(raw: bytes) -> tuple[Values, Values] | None:
    """The file meta's and the wanted elements' raw values, or None where the walk does not
    take the file on (`agent.dimse.header_scan`)."""
    scanned = scan(raw, _WANTED, _LAST_TAG)
    return None if scanned is None else (scanned.meta, scanned.elements)


def read_with_pydicom(raw: bytes) -> tuple[Values, Values]:
    """The file meta's and the wanted elements' values as pydicom reads them."""
    try:
        dataset = read_partial(BytesIO(raw), _past_header, specific_tags=list(_WANTED))
        meta: Values = {
            int(tag): _value(element.value) for tag, element in dataset.file_meta.items()
        }
        values: dict[int, bytes | str] = {}
        for tag in _WANTED:
            element = dataset.get_item(tag)
            if element is not None:
                values[int(tag)] = _value(element.value)
    except Exception as exc:  # pydicom raises many types on malformed input
        raise UnparsableInstanceError(f"cannot read the DICOM header: {exc!r}") from exc
    return meta, values


def header_from(meta: Values, values: Values) -> InstanceHeader:
    """Check and decode the values `read_header` found."""
    try:
        uids = {keyword: _ascii(values.get(_TAGS[keyword])) for keyword in _REQUIRED_UIDS}
        transfer_syntax = _ascii(meta.get(_TRANSFER_SYNTAX))
        announced = (_ascii(meta.get(_ANNOUNCED_CLASS)), _ascii(meta.get(_ANNOUNCED_INSTANCE)))
    except UnicodeDecodeError as exc:
        raise UnparsableInstanceError(f"cannot read the DICOM header: {exc!r}") from exc
    missing = [keyword for keyword, value in uids.items() if not value]
    if missing:
        raise UnparsableInstanceError(f"missing {', '.join(missing)}")
    _check_announced(uids, *announced)
    texts = _texts(values)
    return InstanceHeader(
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        study_instance_uid=uids["StudyInstanceUID"],
        transfer_syntax_uid=transfer_syntax,
        modality=texts["Modality"],
        patient_id=texts["PatientID"],
        patient_name=texts["PatientName"],
        accession_number=texts["AccessionNumber"],
        study_date=texts["StudyDate"],
        series_description=texts["SeriesDescription"],
        series_number=_integer(texts["SeriesNumber"]),
        instance_number=_integer(texts["InstanceNumber"]),
    )


def _past_header(tag: BaseTag, _vr: str | None, _length: int) -> bool:
    return tag > _LAST_TAG


def _check_announced(uids: dict[str, str], sop_class: str, sop_instance: str) -> None:
    if sop_class and sop_class != uids["SOPClassUID"]:
        raise SopClassMismatchError(
            f"SOP Class UID {uids['SOPClassUID']} in the dataset, {sop_class} announced"
        )
    if sop_instance and sop_instance != uids["SOPInstanceUID"]:
        raise UnparsableInstanceError(
            f"SOP Instance UID {uids['SOPInstanceUID']} in the dataset, {sop_instance} announced"
        )


def _value(value: object) -> bytes | str:
    """An element's value as read (bytes), or as text if pydicom already converted it."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, MultiValue | list | tuple):  # a multi-valued element, converted
        return "\\".join(str(item) for item in value)
    return str(value)


def _ascii(value: bytes | str | None) -> str:
    if value is None:
        return ""
    text = value.decode("ascii") if isinstance(value, bytes) else value
    return text.strip(" \x00")


def _charsets(value: bytes | str | None) -> str | list[str] | None:
    """Specific Character Set as pydicom's `convert_encodings` takes it."""
    if value is None:
        return None
    text = value.decode("ascii", errors="replace") if isinstance(value, bytes) else value
    terms = [term.strip(" \x00") for term in text.split("\\")]
    return terms[0] if len(terms) == 1 else terms


def _texts(values: Values) -> dict[str, str]:
    """The optional tags as text; an undecodable value is empty, never a quarantine."""
    encodings = convert_encodings(_charsets(values.get(_CHARSET)))
    texts = {}
    for keyword in _TEXTS:
        value = values.get(_TAGS[keyword], b"")
        delimiters = PN_DELIMS if keyword in _PERSON_NAMES else TEXT_VR_DELIMS
        try:
            text = decode_bytes(value, encodings, delimiters) if isinstance(value, bytes) else value
        except (ValueError, LookupError) as exc:
            LOGGER.debug("undecodable optional tag %s: %s", keyword, type(exc).__name__)
            text = ""
        text = text.strip(" \x00")
        texts[keyword] = text.rstrip("=") if keyword in _PERSON_NAMES else text  # empty groups
    return texts


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
