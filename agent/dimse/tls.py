"""TLS contexts for DICOM associations (PS3.15 B.1 secure transport), built from PEM files."""

from __future__ import annotations

import ssl
from pathlib import Path

from agent.config import DestinationTls, TlsSettings


def server_tls_context(
    cert_file: Path, key_file: Path, ca_file: Path | None = None
) -> ssl.SSLContext:
    """The SCP's context; with `ca_file`, peers must present a certificate it signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_tls_context(
    ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """The SCU's context: verifies the peer against `ca_file` (or the system store)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


def scp_tls_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """The SCP's context from the `tls` settings; None when TLS is off."""
    if not (tls.enabled and tls.cert_file and tls.key_file):
        return None
    return server_tls_context(tls.cert_file, tls.key_file, tls.ca_file)


def destination_tls_context(tls: DestinationTls | None) -> ssl.SSLContext | None:
    """The context for associations to a DIMSE destination; None when it has no TLS."""
    if tls is None:
        return None
    return client_tls_context(tls.ca_file, tls.cert_file, tls.key_file)
