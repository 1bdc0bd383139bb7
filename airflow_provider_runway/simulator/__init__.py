"""runway-sim: a local simulator of KIE.ai's Runway and Aleph API (work in progress)."""
