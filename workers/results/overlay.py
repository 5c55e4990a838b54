"""Secondary-capture key images, for viewers that cannot show a SEG.

One image per lesion: the source slice through the lesion (nearest its centre of mass) in a lung
window, every lesion on that slice outlined (the key lesion in red, others in yellow), and above
the image a banner reading "AI RESULT - NOT FOR DIAGNOSTIC USE" with the lesion's measurements.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from scipy import ndimage

from models.findings import Findings, Lesion
from models.pipelines.base import NOT_FOR_DIAGNOSTIC_USE
from models.volume import Volume
from workers.results.common import (
    ResultEncodingError,
    ResultIdentity,
    ordered_source,
    processing_equipment,
)
from workers.results.uids import OutputKind

LUNG_WINDOW = (-600.0, 1500.0)  # centre, width in HU
KEY_OUTLINE = (255, 48, 48)
OTHER_OUTLINE = (255, 220, 0)
OUTLINE_PIXELS = 2
BANNER_TEXT = (255, 255, 255)
SMALLEST_FONT = 8
# Patient direction letters of +x, +y, +z (DICOM patient coordinates: left, posterior, head).
_DIRECTIONS = (("R", "L"), ("A", "P"), ("F", "H"))


def encode_key_images(
    source: Sequence[Dataset], volume: Volume, findings: Findings, identity: ResultIdentity
) -> list[hd.sc.SCImage]:
    """One secondary-capture key image per lesion, in lesion order (none when there is none)."""
    identity.require_same_pipeline(findings)
    images = ordered_source(source, volume)
    orientation = (_direction(volume.row_cosine), _direction(volume.column_cosine))
    keys = []
    for number, lesion in enumerate(findings.lesions, start=1):
        k = _key_slice(findings, lesion)
        pixels = render_key_image(
            volume.voxels[k], findings.lesion_map[k], lesion.index, _caption(lesion, identity)
        )
        key = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=images[k],
            pixel_array=pixels,
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            series_instance_uid=identity.uid(OutputKind.KEY_IMAGE_SERIES, volume),
            series_number=identity.key_image_series_number,
            sop_instance_uid=identity.uid(OutputKind.KEY_IMAGE_INSTANCE, volume, lesion.index),
            instance_number=number,
            manufacturer=identity.manufacturer,
            patient_orientation=orientation,
            series_description=identity.series_description,
            contributing_equipment=[processing_equipment(identity)],
        )
        _mark_as_annotated_copy(key, images[k])
        keys.append(key)
    return keys


def render_key_image(
    hu: np.ndarray, lesion_map: np.ndarray, key_index: int, caption: Sequence[str]
) -> np.ndarray:
    """RGB uint8 of one slice: lung window, lesion outlines, caption banner on top."""
    centre, width = LUNG_WINDOW
    gray = np.clip((hu - (centre - width / 2)) / width * 255.0, 0, 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    for index in np.unique(lesion_map[lesion_map > 0]):
        mask = lesion_map == index
        ring = ndimage.binary_dilation(mask, iterations=OUTLINE_PIXELS) & ~mask
        rgb[ring] = KEY_OUTLINE if index == key_index else OTHER_OUTLINE
    return np.concatenate([_banner(caption, rgb.shape[1]), rgb], axis=0)


def _banner(lines: Sequence[str], columns: int) -> np.ndarray:
    """White text on black, as wide as the image, the font as large as the lines allow."""
    size = max(SMALLEST_FONT, columns // 20)
    font = ImageFont.load_default(size=size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    while size > SMALLEST_FONT and max(measure.textlength(t, font=font) for t in lines) > columns:
        size -= 1
        font = ImageFont.load_default(size=size)
    line_height = round(size * 1.3)
    banner = Image.new("RGB", (columns, line_height * len(lines) + size // 2), (0, 0, 0))
    draw = ImageDraw.Draw(banner)
    for row, text in enumerate(lines):
        draw.text((size // 4, size // 4 + row * line_height), text, fill=BANNER_TEXT, font=font)
    return np.asarray(banner, dtype=np.uint8)


def _caption(lesion: Lesion, identity: ResultIdentity) -> tuple[str, str, str]:
    return (
        NOT_FOR_DIAGNOSTIC_USE.upper(),
        f"Nodule {lesion.index}: {lesion.longest_axial_diameter_mm:.1f} mm, "
        f"{lesion.volume_mm3:.0f} mm3, {lesion.mean_hu:.0f} HU",
        f"{identity.pipeline_name} {identity.pipeline_version}, confidence {lesion.confidence:.0%}",
    )


def _key_slice(findings: Findings, lesion: Lesion) -> int:
    """The slice nearest the lesion's centre of mass that the lesion is on."""
    slices = np.flatnonzero((findings.lesion_map == lesion.index).any(axis=(1, 2)))
    if slices.size == 0:
        raise ResultEncodingError(f"lesion {lesion.index} has no voxel in the lesion map")
    return int(slices[np.argmin(np.abs(slices - lesion.centroid_voxel[0]))])


def _direction(cosine: tuple[float, float, float]) -> str:
    """The patient direction letter (L, P, H, ...) an image axis mostly points to."""
    axis = int(np.argmax(np.abs(cosine)))
    return _DIRECTIONS[axis][int(cosine[axis] > 0)]


def _mark_as_annotated_copy(key: hd.sc.SCImage, image: Dataset) -> None:
    """Attributes highdicom's SCImage does not offer: burned-in text, body part, source slice."""
    key.BurnedInAnnotation = "YES"
    if "BodyPartExamined" in image:
        # Without it dciodvfy asks for the Laterality of a possibly paired body part.
        key.BodyPartExamined = image.BodyPartExamined
    reference = Dataset()
    reference.ReferencedSOPClassUID = image.SOPClassUID
    reference.ReferencedSOPInstanceUID = image.SOPInstanceUID
    key.SourceImageSequence = [reference]
