"""Perception for GUI agents: capture -> change -> detect -> OCR -> redact.

Pure image logic (change, detect, redact) lives in modules without I/O; capture (X11) and OCR
(the tesseract process) are the only modules that reach outside the process.
"""
