"""The identifying and routing tags of a received instance, read cheaply.

Receivers read the header of every instance, so this keeps pydicom's work small: only the
tags named here are kept, parsing stops after the last of them (the rest of a header can be
long), and their values are decoded straight from the raw bytes (UIDs and numbers as ASCII,
text in the data set's Specific Character Set) rather than converted to typed values one
`Dataset.get` at a time, which costs more than the parsing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from io import BytesIO

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.dataset import Dataset
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import PN_DELIMS, TEXT_VR_DELIMS

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
_TAGS = {keyword: Tag(keyword) for keyword in (*_REQUIRED_UIDS, *_TEXTS)}
_LAST_TAG = max(_TAGS.values())
_CHARSET = Tag("SpecificCharacterSet")
_PERSON_NAMES = frozenset({"PatientName"})


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

    Raises `UnparsableInstanceError` when pydicom cannot read it, a UID is missing, or the
    dataset's UIDs differ from those announced in the file meta (the C-STORE request's).
    """
    try:
        dataset = read_partial(BytesIO(raw), _past_header, specific_tags=list(_TAGS.values()))
        uids = {keyword: _ascii(dataset, keyword) for keyword in _REQUIRED_UIDS}
        meta = dataset.file_meta
        transfer_syntax = str(meta.get("TransferSyntaxUID", ""))
        announced = (
            str(meta.get("MediaStorageSOPClassUID", "")),
            str(meta.get("MediaStorageSOPInstanceUID", "")),
        )
    except Exception as exc:  # pydicom raises many types on malformed input
        raise UnparsableInstanceError(f"cannot read the DICOM header: {exc!r}") from exc
    missing = [keyword for keyword, value in uids.items() if not value]
    if missing:
        raise UnparsableInstanceError(f"missing {', '.join(missing)}")
    _check_announced(uids, *announced)
    texts = _texts(dataset)
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


def _raw_value(dataset: Dataset, keyword: str) -> bytes | str:
    """The element's value as read (bytes), or as text if pydicom already converted it."""
    element = dataset.get_item(_TAGS[keyword])
    if element is None or element.value is None:
        return b""
    value = element.value
    return value if isinstance(value, bytes) else str(value)


def _ascii(dataset: Dataset, keyword: str) -> str:
    value = _raw_value(dataset, keyword)
    text = value.decode("ascii") if isinstance(value, bytes) else value
    return text.strip(" \x00")


def _texts(dataset: Dataset) -> dict[str, str]:
    """The optional tags as text; an undecodable value is empty, never a quarantine."""
    encodings = convert_encodings(dataset.get(_CHARSET).value if _CHARSET in dataset else None)
    texts = {}
    for keyword in _TEXTS:
        value = _raw_value(dataset, keyword)
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
