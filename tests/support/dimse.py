"""DIMSE requests as bytes, for tests that speak to the SCP (or its parts) directly."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pynetdicom.dsutils import encode
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import build_context

from agent.dimse import wire
from agent.dimse.negotiation import APPLICATION_CONTEXT_NAME
from tests.conftest import CT_IMAGE_STORAGE

UNKNOWN_SOP_CLASS = "1.2.826.0.1.3680043.10.5.999"
INSTANCE = "1.2.3.4.5.6789"


def associate_request(calling_ae: str, *syntaxes: str, called_ae: str = "AI_AGENT") -> bytes:
    """An A-ASSOCIATE-RQ PDU proposing CT Image Storage in `syntaxes` as context 1 and a
    SOP class no SCP knows as context 3."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = APPLICATION_CONTEXT_NAME
    primitive.calling_ae_title = calling_ae
    primitive.called_ae_title = called_ae
    contexts = [build_context(CT_IMAGE_STORAGE, list(syntaxes)), build_context(UNKNOWN_SOP_CLASS)]
    for number, context in enumerate(contexts):
        context.context_id = 2 * number + 1
    primitive.presentation_context_definition_list = contexts
    maximum = MaximumLengthNotification()
    maximum.maximum_length_received = 16384
    primitive.user_information = [maximum]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def store_request(message_id: int = 7, *, with_dataset: bool = True) -> bytes:
    """A C-STORE-RQ command set (Implicit VR Little Endian) for CT instance `INSTANCE`."""
    command = Dataset()
    command.AffectedSOPClassUID = CT_IMAGE_STORAGE
    command.CommandField = wire.C_STORE_RQ
    command.MessageID = message_id
    command.Priority = 0
    command.CommandDataSetType = 0x0000 if with_dataset else wire.NO_DATASET
    command.AffectedSOPInstanceUID = INSTANCE
    encoded = encode(command, True, True)
    assert encoded is not None
    return encoded
