"""WikiText's text as language-model evaluations score it, without torch or Django (the evaluate job and the
benchmarks both use it).

WikiText-2 comes tokenised (`@-@`, spaces before punctuation); as in GPT-2's zero-shot evaluation it is
detokenised before a model's tokenizer sees it, and its perplexity is per WikiText token (whitespace-separated,
the unit its benchmark and GPT-2's Table 3 use), so models with different tokenizers compare.
"""

import re

_WIKITEXT_RULES = [
    (re.compile(r" @([-,.])@ "), r"\1"),  # 1 @,@ 000 → 1,000; well @-@ known → well-known
    (re.compile(r" ([.,:;!?)\]}'])"), r"\1"),  # no space before closing punctuation
    (re.compile(r"([(\[{]) "), r"\1"),  # nor after opening brackets
    (re.compile(r" (n't|'s|'re|'ve|'m|'ll|'d)\b"), r"\1"),  # do n't → don't
    (re.compile(r"\" ([^\"\n]*?) \""), r'"\1"'),  # " quoted " → "quoted"
    (re.compile(r"^ ?(=+) (.*?) (=+) ?$", re.MULTILINE), r"\1 \2 \3"),  # headings keep their marks
]


def wikitext_detokenize(text: str) -> str:
    """WikiText as GPT-2 scored it: `@-@` joins and spacing around punctuation undone."""
    for pattern, replacement in _WIKITEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def wikitext_tokens(raw: str) -> int:
    """WikiText's own token count, the denominator of its perplexities: the words of each line and its end of
    line (245,569 for the test split of WikiText-2)."""
    return sum(len(line.split()) + 1 for line in raw.splitlines())
