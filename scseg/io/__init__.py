"""Reading and writing images: NIfTI, DICOM series, DICOM SEG, and geometry helpers."""
