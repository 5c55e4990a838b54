"""DICOMweb: STOW-RS out (exports); STOW-RS in and UPS-RS come later."""
