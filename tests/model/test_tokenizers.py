"""Tokenizers: Chinese, English, mixed and empty input; spec round trip."""

import pytest

from model.tokenizers import TokenizerSpec, build_tokenizer, join_tokens


def test_jieba_segments_chinese_and_normalizes_fullwidth():
    tokenizer = build_tokenizer(TokenizerSpec("jieba"))
    tokens = tokenizer.tokenize("我爱北京天安门，１９９８年")
    assert tokens[:4] == ["我", "爱", "北京", "天安门"]
    assert "1998" in tokens  # NFKC turned full-width digits into ASCII
    assert tokenizer.detokenize(tokens) == "我爱北京天安门, 1998年"


def test_jieba_mixed_text_drops_whitespace_tokens():
    tokens = build_tokenizer(TokenizerSpec("jieba")).tokenize("我用 PyTorch 训练 LSTM 模型")
    assert all(t.strip() for t in tokens)
    assert "PyTorch" in tokens and "LSTM" in tokens


def test_jieba_user_dictionary_changes_segmentation(tmp_path):
    text = "下一词预测服务"
    plain = build_tokenizer(TokenizerSpec("jieba")).tokenize(text)
    user_dict = tmp_path / "dict.txt"
    user_dict.write_text("下一词预测 100 n\n", encoding="utf-8")
    custom = build_tokenizer(TokenizerSpec("jieba", user_dict=str(user_dict))).tokenize(text)
    assert "下一词预测" in custom and "下一词预测" not in plain


def test_english_splits_punctuation_and_clitics():
    tokenizer = build_tokenizer(TokenizerSpec("english", lowercase=True))
    tokens = tokenizer.tokenize("Hello, World! It's 3.5% (really) don't")
    assert tokens == [
        "hello",
        ",",
        "world",
        "!",
        "it",
        "'s",
        "3.5",
        "%",
        "(",
        "really",
        ")",
        "do",
        "n't",
    ]
    assert tokenizer.detokenize(tokens) == "hello, world! it's 3.5% (really) don't"


def test_whitespace_tokenizer_keeps_pretokenized_fields():
    tokens = build_tokenizer(TokenizerSpec("whitespace")).tokenize(
        " The <unk> cat , sat @-@ down \n"
    )
    assert tokens == ["The", "<unk>", "cat", ",", "sat", "@-@", "down"]


@pytest.mark.parametrize("name", ["jieba", "english", "whitespace"])
@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_gives_no_tokens(name, text):
    assert build_tokenizer(TokenizerSpec(name)).tokenize(text) == []


def test_join_tokens_mixes_chinese_and_english():
    assert join_tokens(["我", "爱", "NLP", "and", "深度", "学习", "."]) == "我爱NLP and深度学习."


def test_spec_round_trip_and_unknown_tokenizer_rejected():
    spec = TokenizerSpec("english", nfkc=False, lowercase=True)
    assert TokenizerSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown tokenizer"):
        TokenizerSpec.from_dict({"name": "bpe"})


def test_rjieba_segments_like_jieba_and_is_recorded_by_name():
    rust = build_tokenizer(TokenizerSpec("rjieba"))
    python = build_tokenizer(TokenizerSpec("jieba"))
    text = "中国经济发展很快。我们热爱和平"
    assert rust.tokenize(text) == python.tokenize(text)
    assert TokenizerSpec.from_dict(rust.spec.to_dict()).name == "rjieba"
    with pytest.raises(ValueError, match="no user dictionary"):
        build_tokenizer(TokenizerSpec("rjieba", user_dict="words.txt"))
