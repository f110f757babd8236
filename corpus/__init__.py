"""A screen corpus with ground truth from the toolkits themselves (Tk's winfo_*, the browser's
DOM), deterministic by seed, and the evaluation of perception against it.

Modules: `split` (which seeds tune, which are held out), `vocab` (plausible UI words),
`tk_screens` (a Tk screen per seed), `html_screens` (an HTML form per seed), `render`
(renders seeds to PNG + JSON under Xvfb), `evaluate` (precision/recall and OCR accuracy),
`run` (renders and scores; `python -m corpus.run` scores tuning seeds and lists failures),
`train` (the detector's forest, from tuning seeds).
"""
