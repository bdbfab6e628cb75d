"""The families `manage.py seed_gpt2` records: OpenAI's GPT-2 (real hparams) and the bundled mini family."""

GPT2_FAMILY = {
    "slug": "gpt2",
    "name": "GPT-2",
    "description": (
        "OpenAI's 2019 language models, released in stages: 124M in February, 355M in May, "
        "774M and 1558M first to partners, then to everyone in August and November."
    ),
}

# openai/gpt-2 hparams.json; the paper's earlier names were wrong counts, later renamed.
GPT2_SIZES = [
    {"slug": "gpt2-124m", "display_name": "124M", "historical_names": ["117M", "small"],
     "hparams": {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12}},
    {"slug": "gpt2-355m", "display_name": "355M", "historical_names": ["345M", "medium"],
     "hparams": {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 1024, "n_head": 16, "n_layer": 24}},
    {"slug": "gpt2-774m", "display_name": "774M", "historical_names": ["762M", "large"],
     "hparams": {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 1280, "n_head": 20, "n_layer": 36}},
    {"slug": "gpt2-1558m", "display_name": "1558M", "historical_names": ["1542M", "xl", "1.5B"],
     "hparams": {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 1600, "n_head": 25, "n_layer": 48}},
]

GPT2_CARD = {
    "details": (
        "GPT-2 is a family of transformer language models trained by OpenAI to predict the next token "
        "on WebText, about 40 GB of text from outbound Reddit links with at least 3 karma. Byte-level BPE "
        "vocabulary of 50,257 tokens, context of 1,024 tokens. Released in stages during 2019."
    ),
    "intended_uses": (
        "Primarily AI researchers and practitioners: understanding the behaviours, capabilities, biases "
        "and constraints of large-scale generative language models. Secondary uses foreseen: writing "
        "assistance (grammar, autocompletion), creative writing and art, and entertainment."
    ),
    "out_of_scope_uses": (
        "The models do not distinguish fact from fiction: uses that require generated text to be true are "
        "out of scope. Deployment in systems that interact with people should be preceded by a study of "
        "the biases relevant to that use."
    ),
    "limitations_and_biases": (
        "WebText contains unfiltered content from the internet and is far from neutral. The models "
        "reproduce its biases (for example around gender, race and religion) and can produce text that "
        "is offensive or misleading. Larger sizes produce text that people find harder to tell apart "
        "from human writing."
    ),
    "evaluation": (
        "Zero-shot language-modelling results of the 1558M model are recorded as evaluation results "
        "(GPT-2 paper, Table 3). Detection of its outputs is studied with the published output dataset."
    ),
}

GPT2_PAPER = "GPT-2 paper (Radford et al., 2019), Table 3, zero-shot"
GPT2_1558M_EVALS = [
    ("WikiText-2", "perplexity", 18.34),
    ("PTB", "perplexity", 35.76),
    ("LAMBADA", "perplexity", 8.63),
    ("LAMBADA", "accuracy", 63.24),
    ("enwik8", "bits_per_byte", 0.93),
    ("text8", "bits_per_character", 0.98),
    ("WikiText-103", "perplexity", 17.48),
    ("One Billion Word", "perplexity", 42.16),
    ("CBT-CN", "accuracy", 93.30),
    ("CBT-NE", "accuracy", 89.05),
    ("Winograd", "accuracy", 70.70),
]

MINI_FAMILY = {
    "slug": "mini",
    "name": "Stagegate mini",
    "description": (
        "A GPT-2-architecture family that this platform trains itself on CPU: GPT-2's depth and width "
        "progression scaled down so the smallest trains in minutes and the largest well under an hour."
    ),
    "bundled": True,
}

# Depth grows 2→8 as GPT-2's 12→48; width 128→320 as 768→1600 (64-dim heads, as in GPT-2).
_MINI_VOCAB, _MINI_CTX = 8192, 256
MINI_SIZES = [
    {"slug": "mini-1m", "display_name": "1.5M", "historical_names": ["mini small"],
     "hparams": {"n_vocab": _MINI_VOCAB, "n_ctx": _MINI_CTX, "n_embd": 128, "n_head": 2, "n_layer": 2}},
    {"slug": "mini-3m", "display_name": "3.4M", "historical_names": ["mini medium"],
     "hparams": {"n_vocab": _MINI_VOCAB, "n_ctx": _MINI_CTX, "n_embd": 192, "n_head": 3, "n_layer": 4}},
    {"slug": "mini-7m", "display_name": "6.9M", "historical_names": ["mini large"],
     "hparams": {"n_vocab": _MINI_VOCAB, "n_ctx": _MINI_CTX, "n_embd": 256, "n_head": 4, "n_layer": 6}},
    {"slug": "mini-13m", "display_name": "12.6M", "historical_names": ["mini xl"],
     "hparams": {"n_vocab": _MINI_VOCAB, "n_ctx": _MINI_CTX, "n_embd": 320, "n_head": 5, "n_layer": 8}},
]

MINI_CARD = {
    "details": (
        "A small GPT-2-architecture model trained by Stagegate's workers on the bundled corpus "
        "(Tiny Shakespeare where available). Byte-level BPE vocabulary of 8,192 tokens, context of 256."
    ),
    "intended_uses": "Demonstrating and testing staged release, partner access and detection research end to end.",
    "out_of_scope_uses": "Any use that needs fluent, factual or safe text: the model is tiny and knows little.",
    "limitations_and_biases": "Trained on a small corpus of old plays; it imitates their style and their biases.",
    "evaluation": "Validation perplexity and bits per byte are recorded by each training run.",
}


def gpt2_family_seed() -> list:
    """The GPT-2 family, its four sizes (real hparams), their card and the paper's results; their 2019 stages
    are releases' to record (releases/governance/seed_history.py). Running it again changes nothing."""
    from registry import services

    gpt2 = services.family_upsert(**GPT2_FAMILY)
    sizes = []
    for order, spec in enumerate(GPT2_SIZES):
        size = services.model_size_upsert(family=gpt2, order=order, **spec)
        services.model_card_set(size=size, **GPT2_CARD)
        if size.slug == "gpt2-1558m":
            for dataset, metric, value in GPT2_1558M_EVALS:
                services.eval_result_record(size=size, dataset=dataset, metric=metric, value=value,
                                            source=GPT2_PAPER)
        sizes.append(size)
    return sizes


def mini_family_seed() -> list:
    """The bundled mini family, every size internal until released here."""
    from registry import services

    mini = services.family_upsert(**MINI_FAMILY)
    sizes = []
    for order, spec in enumerate(MINI_SIZES):
        size = services.model_size_upsert(family=mini, order=order, **spec)
        services.model_card_set(size=size, **MINI_CARD)
        sizes.append(size)
    return sizes
