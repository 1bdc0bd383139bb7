"""Bytes and notifications crossing between KIE and your systems: input uploads, result downloads, KIE's callbacks."""
