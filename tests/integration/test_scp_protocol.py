"""The SCP against peers that break the protocol, and against fragmented messages."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

from agent.dimse import scu, wire
from tests.support.dimse import associate_request, store_request
from tests.support.scp import (
    CALLING_AE,
    LOCALHOST,
    SCP_AE,
    RunningScp,
    StartScp,
    storescu,
    wait_until,
)

pytestmark = pytest.mark.integration


def raw_connection(port: int) -> socket.socket:
    connection = socket.create_connection((LOCALHOST, port), timeout=10)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def test_garbage_instead_of_an_association_request_is_aborted(scp: RunningScp) -> None:
    with raw_connection(scp.port) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

        pdu_type, _ = wire.read_pdu(connection, 1024)

    assert pdu_type == wire.A_ABORT
    assert scu.echo(SCP_AE, LOCALHOST, scp.port)


def test_a_silent_peer_is_aborted_after_the_network_timeout(scp_starter: StartScp) -> None:
    impatient = scp_starter(network_timeout=0.3)
    with raw_connection(impatient.port) as connection:
        pdu_type, _ = wire.read_pdu(connection, 1024)

    assert pdu_type == wire.A_ABORT


def test_a_peer_closing_mid_pdu_leaves_the_scp_serving(scp: RunningScp) -> None:
    with raw_connection(scp.port) as connection:
        connection.sendall(bytes((wire.A_ASSOCIATE_RQ, 0, 0, 0, 1, 0)) + b"half")

    assert scu.echo(SCP_AE, LOCALHOST, scp.port)


def test_many_small_pdus_make_the_same_file(scp: RunningScp) -> None:
    path = Path(str(get_testdata_file("CT_small.dcm")))

    done = storescu(scp.port, path, "--max-send-pdu", "4096")

    assert done.returncode == 0, done.stderr
    [instance] = scp.recorder.instances
    stored, sent = dcmread(scp.spool.path_of(instance.spool_path)), dcmread(path)
    assert stored.SOPInstanceUID == sent.SOPInstanceUID
    assert stored.PixelData == sent.PixelData


def test_a_store_cut_off_mid_data_set_leaves_no_file(
    scp: RunningScp, caplog: pytest.LogCaptureFixture
) -> None:
    with raw_connection(scp.port) as connection:
        connection.sendall(associate_request(CALLING_AE, ExplicitVRLittleEndian, called_ae=SCP_AE))
        assert wire.read_pdu(connection, 1 << 20)[0] == wire.A_ASSOCIATE_AC
        command = wire.COMMAND_FRAGMENT | wire.LAST_FRAGMENT
        connection.sendall(wire.p_data_tf(1, command, store_request()))
        connection.sendall(wire.p_data_tf(1, 0x00, b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100"))

    assert wait_until(lambda: "lost" in caplog.text)
    assert scp.recorder.instances == []
    assert [path for path in scp.spool.root.rglob("*") if path.is_file()] == []
    assert scu.echo(SCP_AE, LOCALHOST, scp.port)
