"""The Store Instances Response of STOW-RS (PS3.18 10.5.3) in DICOM JSON: what the client reads
and the server writes."""

from __future__ import annotations

DICOM_JSON = "application/dicom+json"
REFERENCED_SOP_SEQUENCE = "00081199"  # the stored instances
FAILED_SOP_SEQUENCE = "00081198"  # the others, each with a Failure Reason
REFERENCED_SOP_CLASS_UID = "00081150"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
