"""DICOM networking (DIMSE): the storage SCP that receives studies and the SCU that exports."""
