"""Findings as DICOM result objects: SEG, TID 1500 SR and secondary-capture key images."""

from workers.results.common import ResultEncodingError, ResultIdentity
from workers.results.overlay import encode_key_images
from workers.results.seg import encode_seg
from workers.results.sr import encode_sr

__all__ = [
    "ResultEncodingError",
    "ResultIdentity",
    "encode_key_images",
    "encode_seg",
    "encode_sr",
]
