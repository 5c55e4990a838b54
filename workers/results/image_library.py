"""A compact TID 1600 Image Library for a measurement report on one series.

highdicom's `ImageLibrary` repeats every descriptor (modality, frame of reference, matrix,
pixel spacing, slice thickness, orientation, position) under each image: for a 300-slice CT
some 4,000 content items, which its SR constructor then deep-copies and walks and which are
then written, most of the SR's encoding time. TID 1600 lets an Image Library Group carry the
descriptors its images share (TID 1602), and an entry's own descriptors are optional (TID 1601),
so here the group holds the shared ones once and each entry is the image reference alone; where
a slice lies is in the slice itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

SOURCE = hd.sr.CodedConcept("260753009", "SCT", "Source")
PER_IMAGE_CONCEPTS = (
    codes.DCM.ImagePositionPatientX,
    codes.DCM.ImagePositionPatientY,
    codes.DCM.ImagePositionPatientZ,
)
Relationship = hd.sr.RelationshipTypeValues


def image_library(images: Sequence[Dataset]) -> hd.sr.ContainerContentItem:
    """The Image Library of `images` (slices of one series, in the order given): one group
    with the descriptors they share, taken from the first, and one entry per image."""
    if not images:
        raise ValueError("an image library needs at least one image")
    group = hd.sr.ContainerContentItem(
        name=codes.DCM.ImageLibraryGroup, relationship_type=Relationship.CONTAINS
    )
    group.ContentSequence = hd.sr.ContentSequence(
        [
            item
            for item in hd.sr.ImageLibraryEntryDescriptors(images[0])
            if item.name not in PER_IMAGE_CONCEPTS
        ]
    )
    group.ContentSequence.extend(
        hd.sr.ImageContentItem(
            name=SOURCE,
            referenced_sop_class_uid=image.SOPClassUID,
            referenced_sop_instance_uid=image.SOPInstanceUID,
            relationship_type=Relationship.CONTAINS,
        )
        for image in images
    )
    library = hd.sr.ContainerContentItem(
        name=codes.DCM.ImageLibrary, relationship_type=Relationship.CONTAINS
    )
    library.ContentSequence = hd.sr.ContentSequence([group])
    return library
