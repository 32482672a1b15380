"""studyhub.cases: data sources read into validated, checksummed cases, and eligibility.

- :func:`read_cases` reads a protocol's ``data`` section (CSV manifest, class
  folders, DICOM folder or the synthetic demo) into :class:`CaseRecord` s,
  refusing the whole source with one message when any row is bad;
- :func:`load_image` and :func:`load_mask` load a case's pixels, and
  :func:`load_modality_values` a DICOM case's values before any display window;
- :func:`apply_eligibility` splits cases into eligible and excluded-with-reason.
"""

from studyhub.cases.dataset import read_cases
from studyhub.cases.eligibility import apply_eligibility
from studyhub.cases.records import (
    CaseRecord,
    MetadataValue,
    load_image,
    load_mask,
    load_modality_values,
)

__all__ = [
    "CaseRecord",
    "MetadataValue",
    "apply_eligibility",
    "load_image",
    "load_mask",
    "load_modality_values",
    "read_cases",
]
