"""Helpers shared by the integration and end-to-end tests and the benchmarks: real servers
(a node, Celery workers, Orthanc, PostgreSQL, Redis), real DICOM files and DCMTK, no mocks.

Plain functions and context managers live in the modules here; `tests.support.fixtures`
wraps them as pytest fixtures (registered for the whole suite in `tests/conftest.py`).
"""
