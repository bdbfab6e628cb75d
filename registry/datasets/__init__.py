"""Output datasets for researchers: the public API, the 2019 compatibility path, pages, plots, removal requests."""
