"""The bundled GPT-2 in torch: model, tokenizer, training, sampling, evaluation, export. No Django here."""
