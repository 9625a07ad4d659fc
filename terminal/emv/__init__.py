"""The EMV / PBOC 3.0 kernel: selection, GPO and records, offline data authentication
(SDA, DDA, fDDA), qPBOC outcomes and Electronic Cash. See docs/emv.md."""
