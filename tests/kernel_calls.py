"""Counting calls into modelcore's inference kernels, to show which layout actually ran."""

from modelcore import kernels


def count_kernel_calls(monkeypatch) -> dict[str, int]:
    """Calls into each layout's kernels from now on (the dict fills as they run)."""
    calls = dict.fromkeys(kernels.LAYOUTS, 0)
    for name, cls in kernels.LAYOUTS.items():

        def counted(self, x, bias, name=name, call=cls.__call__):
            calls[name] += 1
            return call(self, x, bias)

        monkeypatch.setattr(cls, "__call__", counted)
    return calls
