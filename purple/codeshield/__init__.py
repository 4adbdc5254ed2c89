"""Code Shield: an insecure-code scanner with a regex tier and a semgrep tier."""

from purple.codeshield.scanner import CodeItem, CodeShield, ScanResult, Treatment, extract_code_blocks

__all__ = ["CodeItem", "CodeShield", "ScanResult", "Treatment", "extract_code_blocks"]
