# Regenerates tokenizer.json and config.json of the tiny test model: python3 make_tokenizer.py
import json
import string

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
words = ["the", "a", "film", "movie", "is", "was", "good", "bad", "great", "awful", "fun", "dull",
         "not", "very", "and", "it", "of", "to", "this", "story", "plot", "acting", "love", "hate",
         "best", "worst"]
vocab = (special + words + list(string.ascii_lowercase) + ["##" + c for c in string.ascii_lowercase]
         + list(".,!?'-") + [str(d) for d in range(10)])
while len(vocab) < 128:
    vocab.append(f"[unused{len(vocab)}]")
tok = Tokenizer(models.WordPiece(vocab={t: i for i, t in enumerate(vocab)}, unk_token="[UNK]",
                                 max_input_chars_per_word=100))
tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                            strip_accents=None, lowercase=True)
tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
tok.post_processor = processors.TemplateProcessing(
    single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
    special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
tok.decoder = decoders.WordPiece(prefix="##")
tok.save("tokenizer.json")
cfg = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 128, "hidden_size": 32,
       "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
       "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
       "max_position_embeddings": 128, "type_vocab_size": 2, "initializer_range": 0.02,
       "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute"}
json.dump(cfg, open("config.json", "w"), indent=2)
