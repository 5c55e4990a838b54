"""The storage SCP against real peers: DCMTK storescu/echoscu and pynetdicom's SCU."""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom import uid as uids
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID, generate_uid
from pynetdicom import _config
from pynetdicom.dsutils import split_dataset

from agent.config import Settings
from agent.db.models import Result
from agent.destinations import check_destination, find_destination
from agent.dimse import scu
from agent.dimse.status import Status
from agent.dimse.tls import client_tls_context, server_tls_context
from agent.errors import AssociationRejectedError, PeerUnreachableError
from tests.support.scp import (
    CALLING_AE,
    LOCALHOST,
    SCP_AE,
    RunningScp,
    StartScp,
    run_dcmtk,
    self_signed_certificate,
    storescu,
    wait_until,
)
from workers.export import deliver

pytestmark = pytest.mark.integration

ENCODING_DETAILS = {Tag("DataSetTrailingPadding"), Tag("PixelData")}

STORESCU_OPTION = {
    uids.ExplicitVRLittleEndian: "-xe",
    uids.ImplicitVRLittleEndian: "-xi",
    uids.ExplicitVRBigEndian: "-xb",
    uids.DeflatedExplicitVRLittleEndian: "-xd",
    uids.JPEGBaseline8Bit: "-xy",
    uids.JPEGExtended12Bit: "-xx",
    uids.JPEGLosslessSV1: "-xs",
    uids.JPEGLSLossless: "-xt",
    uids.JPEGLSNearLossless: "-xu",
    uids.JPEG2000Lossless: "-xv",
    uids.JPEG2000: "-xw",
    uids.RLELossless: "-xr",
}
"""storescu's option that proposes a transfer syntax first (JPEG Lossless .57 has none)."""

TEST_FILES = {
    uids.ExplicitVRLittleEndian: "CT_small.dcm",
    uids.ImplicitVRLittleEndian: "MR_small_implicit.dcm",
    uids.ExplicitVRBigEndian: "MR_small_bigendian.dcm",
    uids.DeflatedExplicitVRLittleEndian: "image_dfl.dcm",
    uids.JPEGBaseline8Bit: "SC_rgb_jpeg_dcmtk.dcm",
    uids.JPEGExtended12Bit: "JPEG-lossy.dcm",
    uids.JPEGLosslessSV1: "JPEG-LL.dcm",
    uids.JPEGLSLossless: "MR_small_jpeg_ls_lossless.dcm",
    uids.JPEGLSNearLossless: "JPEGLSNearLossless_16.dcm",
    uids.JPEG2000Lossless: "MR_small_jp2klossless.dcm",
    uids.JPEG2000: "JPEG2000.dcm",
    uids.RLELossless: "MR_small_RLE.dcm",
}


def pydicom_file(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is missing"
    return Path(path)


def with_identity(name: str, folder: Path) -> Path:
    """A pydicom test file, completed with the Study/Series UIDs some of them lack."""
    path = pydicom_file(name)
    dataset = dcmread(path)
    if "StudyInstanceUID" in dataset and "SeriesInstanceUID" in dataset:
        return path
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    completed = folder / name
    dataset.save_as(completed)
    return completed


def without_encoding_details(dataset: Dataset) -> Dataset:
    """Drop what storescu may change in transit (group lengths, trailing padding, the VR of
    encapsulated pixel data: OW in some test files, OB on the wire) once pixel bytes match."""
    dropped = [e.tag for e in dataset if e.tag.element == 0 or e.tag in ENCODING_DETAILS]
    for tag in dropped:
        del dataset[tag]
    return dataset


def assert_same_dataset(spooled: Path, original: Path) -> None:
    got, want = dcmread(spooled), dcmread(original)
    assert got.file_meta.TransferSyntaxUID == want.file_meta.TransferSyntaxUID
    assert got.PixelData == want.PixelData
    assert without_encoding_details(got) == without_encoding_details(want)


@pytest.mark.parametrize("syntax", list(TEST_FILES), ids=lambda syntax: syntax.name)
def test_storescu_stores_each_transfer_syntax_as_received(
    scp: RunningScp, syntax: UID, tmp_path: Path
) -> None:
    original = with_identity(TEST_FILES[syntax], tmp_path)

    done = storescu(scp.port, original, "-R", STORESCU_OPTION[syntax])

    assert done.returncode == 0, done.stdout + done.stderr
    [instance] = scp.recorder.instances
    assert instance.transfer_syntax_uid == syntax
    assert instance.calling_ae == CALLING_AE
    assert instance.sop_instance_uid == dcmread(original).SOPInstanceUID
    spooled = scp.spool.path_of(instance.spool_path)
    assert_same_dataset(spooled, original)
    assert instance.sha256 == hashlib.sha256(spooled.read_bytes()).hexdigest()


def test_jpeg_lossless_non_sv1_is_stored_as_received(scp: RunningScp, tmp_path: Path) -> None:
    relabelled = dcmread(pydicom_file("JPEG-LL.dcm"))
    relabelled.file_meta.TransferSyntaxUID = uids.JPEGLossless  # SV1 streams are valid .57
    original = tmp_path / "jpeg_lossless_57.dcm"
    relabelled.save_as(original)

    [result] = scu.send_files([original], SCP_AE, LOCALHOST, scp.port)

    assert result.ok, result
    [instance] = scp.recorder.instances
    assert instance.transfer_syntax_uid == uids.JPEGLossless
    assert_same_dataset(scp.spool.path_of(instance.spool_path), original)


def test_a_folder_goes_over_one_association(
    scp: RunningScp, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="agent")
    folder = tmp_path / "study"
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm"):
        shutil.copy(pydicom_file(name), folder / name)

    done = storescu(scp.port, folder, "+sd", "+r")

    assert done.returncode == 0, done.stdout + done.stderr
    assert {i.modality for i in scp.recorder.instances} == {"CT", "MR", "OT"}
    assert wait_until(lambda: "closed: 3 stored, 0 failed" in caplog.text), caplog.text


def test_logs_carry_no_phi_by_default(
    scp_starter: StartScp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="agent")
    quiet, chatty = scp_starter(), scp_starter(log_phi=True)

    storescu(quiet.port, pydicom_file("CT_small.dcm"))
    assert wait_until(lambda: "closed: 1 stored" in caplog.text)
    assert "1CT1" not in caplog.text
    assert "CompressedSamples" not in caplog.text

    storescu(chatty.port, pydicom_file("CT_small.dcm"))
    assert wait_until(lambda: "1CT1" in caplog.text)


def test_unlisted_calling_ae_is_rejected_and_logged(
    scp: RunningScp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="agent")

    done = storescu(scp.port, pydicom_file("CT_small.dcm"), calling_ae="INTRUDER")

    assert done.returncode != 0
    assert "Association Rejected" in done.stdout + done.stderr
    assert scp.recorder.instances == []
    # The SCP's thread logs after sending the rejection: storescu may be gone by then.
    assert wait_until(lambda: "association rejected from 'INTRUDER' at 127.0.0.1" in caplog.text)
    with pytest.raises(AssociationRejectedError):
        scu.echo(SCP_AE, LOCALHOST, scp.port, calling_ae="INTRUDER")


def test_malformed_data_is_quarantined_and_the_association_goes_on(
    scp: RunningScp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = pydicom_file("CT_small.dcm")
    _, dataset_offset = split_dataset(good)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(good.read_bytes()[: dataset_offset + 60])  # cut inside group 0008
    # pynetdicom sends a file's dataset bytes unparsed only in chunked mode; storescu
    # refuses to send a file it cannot parse.
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)

    bad_result, good_result = scu.send_files([truncated, good], SCP_AE, LOCALHOST, scp.port)

    assert bad_result.status == Status.CANNOT_UNDERSTAND
    assert good_result.status == Status.SUCCESS
    assert len(scp.recorder.instances) == 1
    [quarantined] = scp.spool.list_quarantine()
    assert quarantined.calling_ae == scu.DEFAULT_CALLING_AE
    assert "missing" in quarantined.reason or "cannot read" in quarantined.reason
    _, quarantined_offset = split_dataset(quarantined.path)
    kept = quarantined.path.read_bytes()[quarantined_offset:]
    assert kept == truncated.read_bytes()[dataset_offset:]


def test_instance_without_study_uid_is_quarantined(scp: RunningScp) -> None:
    done = storescu(scp.port, pydicom_file("JPEGLSNearLossless_16.dcm"), "-R", "-xu")

    assert done.returncode != 0
    assert "Error: CannotUnderstand" in done.stdout + done.stderr
    assert scp.recorder.instances == []
    [quarantined] = scp.spool.list_quarantine()
    assert quarantined.reason == "missing StudyInstanceUID, SeriesInstanceUID"
    assert quarantined.calling_ae == CALLING_AE


def test_dataset_contradicting_its_request_is_quarantined(
    scp: RunningScp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lying = dcmread(pydicom_file("CT_small.dcm"))
    lying.file_meta.MediaStorageSOPClassUID = uids.MRImageStorage
    path = tmp_path / "lying.dcm"
    lying.save_as(path)
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)

    [result] = scu.send_files([path], SCP_AE, LOCALHOST, scp.port)

    assert result.status == Status.DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert "SOP Class UID" in scp.spool.list_quarantine()[0].reason


def test_echo_with_echoscu_and_the_agent_scu(scp: RunningScp) -> None:
    done = run_dcmtk("echoscu", "-aet", CALLING_AE, "-aec", SCP_AE, LOCALHOST, str(scp.port))

    assert done.returncode == 0, done.stderr
    assert scu.echo(SCP_AE, LOCALHOST, scp.port)


def test_empty_allow_list_accepts_any_caller(scp_starter: StartScp) -> None:
    open_scp = scp_starter()

    assert scu.echo(SCP_AE, LOCALHOST, open_scp.port, calling_ae="ANYONE")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return int(probe.getsockname()[1])


def test_scu_reports_a_peer_that_is_down() -> None:
    port = free_port()

    with pytest.raises(PeerUnreachableError, match="unreachable"):
        scu.echo(SCP_AE, LOCALHOST, port)
    with pytest.raises(PeerUnreachableError):
        scu.send_files([pydicom_file("CT_small.dcm")], SCP_AE, LOCALHOST, port)


def test_shutdown_stops_listening_and_can_be_repeated(scp_starter: StartScp) -> None:
    stopped = scp_starter()
    stopped.server.shutdown()  # the fixture shuts it down once more

    with pytest.raises(PeerUnreachableError):
        scu.echo(SCP_AE, LOCALHOST, stopped.port)


def test_send_files_reports_each_file(scp: RunningScp, tmp_path: Path) -> None:
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("not DICOM")
    paths = [pydicom_file("CT_small.dcm"), not_dicom, pydicom_file("MR_small_RLE.dcm")]

    results = scu.send_files(paths, SCP_AE, LOCALHOST, scp.port)

    assert [result.path for result in results] == paths
    assert [result.ok for result in results] == [True, False, True]
    assert results[1].status is None
    assert "not a readable DICOM file" in results[1].detail


def test_tls_association(scp_starter: StartScp, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    secure = scp_starter(tls_context=server_tls_context(cert, key))

    assert scu.echo(SCP_AE, LOCALHOST, secure.port, tls_context=client_tls_context(cert))
    with pytest.raises(PeerUnreachableError):
        scu.echo(SCP_AE, LOCALHOST, secure.port)


def test_a_dimse_destination_over_tls_answers_echo_and_takes_exports(
    scp_starter: StartScp, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    secure = scp_starter(tls_context=server_tls_context(cert, key))
    settings = Settings.model_validate(
        {
            "spool_dir": tmp_path / "spool",
            "destinations": [
                {
                    "kind": "dimse",
                    "name": "secure-pacs",
                    "ae_title": SCP_AE,
                    "host": LOCALHOST,
                    "port": secure.port,
                    "tls": {"ca_file": cert},
                }
            ],
            "rules": [],
        }
    )
    destination = find_destination(settings, "secure-pacs")

    assert "over TLS succeeded" in check_destination(destination, settings.ae_title)
    deliver(settings, "secure-pacs", pydicom_file("CT_small.dcm"), Result())
    [stored] = secure.recorder.instances
    assert stored.calling_ae == settings.ae_title
