"""tesseract in-process through its C API (libtesseract.so.5, installed with tesseract-ocr).

pytesseract starts a tesseract process and reloads the language model for every call, about
75 ms before any recognition on these machines. An agent reads a few small crops per changed
frame, so that start-up is most of its OCR time. The C API keeps one initialised engine alive
and recognises a numpy buffer directly. Same engine, same model, same results as pytesseract.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from dataclasses import dataclass

import numpy as np

RIL_WORD = 3
_LIB_NAMES = ("libtesseract.so.5", "libtesseract.so")


@dataclass
class RawWord:
    text: str
    conf: float
    left: int
    top: int
    width: int
    height: int


def _load() -> ctypes.CDLL:
    last: OSError | None = None
    found = ctypes.util.find_library("tesseract")
    for name in ((found,) if found else ()) + _LIB_NAMES:
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            last = exc
    raise OSError(f"libtesseract not found: {last}")


class CapiTesseract:
    """One live engine (not thread-safe: one per thread)."""

    def __init__(self, lang: str = "eng", psm: int = 6, datapath: str | None = None) -> None:
        lib = _load()
        vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        lib.TessBaseAPICreate.restype = vp
        lib.TessBaseAPIInit3.argtypes = [vp, cp, cp]
        lib.TessBaseAPIInit3.restype = ci
        lib.TessBaseAPISetPageSegMode.argtypes = [vp, ci]
        lib.TessBaseAPISetImage.argtypes = [vp, ctypes.c_void_p, ci, ci, ci, ci]
        lib.TessBaseAPISetSourceResolution.argtypes = [vp, ci]
        lib.TessBaseAPIRecognize.argtypes = [vp, vp]
        lib.TessBaseAPIRecognize.restype = ci
        lib.TessBaseAPIGetIterator.argtypes = [vp]
        lib.TessBaseAPIGetIterator.restype = vp
        lib.TessResultIteratorGetPageIterator.argtypes = [vp]
        lib.TessResultIteratorGetPageIterator.restype = vp
        lib.TessResultIteratorNext.argtypes = [vp, ci]
        lib.TessResultIteratorNext.restype = ci
        lib.TessResultIteratorGetUTF8Text.argtypes = [vp, ci]
        lib.TessResultIteratorGetUTF8Text.restype = ctypes.POINTER(ctypes.c_char)
        lib.TessResultIteratorConfidence.argtypes = [vp, ci]
        lib.TessResultIteratorConfidence.restype = ctypes.c_float
        int_out = ctypes.POINTER(ci)
        lib.TessPageIteratorBoundingBox.argtypes = [vp, ci, int_out, int_out, int_out, int_out]
        lib.TessPageIteratorBoundingBox.restype = ci
        lib.TessDeleteText.argtypes = [ctypes.POINTER(ctypes.c_char)]
        lib.TessResultIteratorDelete.argtypes = [vp]
        lib.TessBaseAPIClear.argtypes = [vp]
        lib.TessBaseAPIEnd.argtypes = [vp]
        lib.TessBaseAPIDelete.argtypes = [vp]
        self.lib = lib
        self.api = lib.TessBaseAPICreate()
        if lib.TessBaseAPIInit3(self.api, datapath.encode() if datapath else None,
                                lang.encode()) != 0:
            lib.TessBaseAPIDelete(self.api)
            self.api = None
            raise OSError(f"tesseract could not load language {lang!r}")
        lib.TessBaseAPISetPageSegMode(self.api, psm)

    def words(self, gray: np.ndarray) -> list[RawWord]:
        """Words of an 8-bit grayscale image, like image_to_data's word rows."""
        lib = self.lib
        img = np.ascontiguousarray(gray, dtype=np.uint8)
        h, w = img.shape
        lib.TessBaseAPISetImage(self.api, img.ctypes.data, w, h, 1, w)
        lib.TessBaseAPISetSourceResolution(self.api, 70)
        if lib.TessBaseAPIRecognize(self.api, None) != 0:
            raise RuntimeError("tesseract recognition failed")
        out: list[RawWord] = []
        it = lib.TessBaseAPIGetIterator(self.api)
        if not it:
            return out
        try:
            page = lib.TessResultIteratorGetPageIterator(it)
            x0, y0, x1, y1 = (ctypes.c_int() for _ in range(4))
            while True:
                ptr = lib.TessResultIteratorGetUTF8Text(it, RIL_WORD)
                if ptr:
                    text = ctypes.string_at(ptr).decode("utf-8", "replace")
                    lib.TessDeleteText(ptr)
                    conf = float(lib.TessResultIteratorConfidence(it, RIL_WORD))
                    if lib.TessPageIteratorBoundingBox(page, RIL_WORD, ctypes.byref(x0),
                                                       ctypes.byref(y0), ctypes.byref(x1),
                                                       ctypes.byref(y1)):
                        out.append(RawWord(text, conf, x0.value, y0.value,
                                           x1.value - x0.value, y1.value - y0.value))
                if not lib.TessResultIteratorNext(it, RIL_WORD):
                    break
        finally:
            lib.TessResultIteratorDelete(it)
            lib.TessBaseAPIClear(self.api)
        return out

    def close(self) -> None:
        if self.api:
            self.lib.TessBaseAPIEnd(self.api)
            self.lib.TessBaseAPIDelete(self.api)
            self.api = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()
