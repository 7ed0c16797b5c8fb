"""Files in and out: import templates, validated imports, exports (CSV and XLSX)."""
