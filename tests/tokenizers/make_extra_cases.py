#!/usr/bin/env python3
"""Writes tests/data/tokenizer/extra_cases.json: more reference encodings for the fixture
tokenizers, made with Hugging Face `tokenizers` from the fixtures' own tokenizer.json files.

For these folders `Tokenizer.from_file(tokenizer.json)` is what transformers' T5Tokenizer /
CLIPTokenizer (tokenizers backend) runs: every special token is already in `added_tokens`.
The ids equal transformers' on all 40 shared cases (checked below); the token strings differ only
for T5's unknown pieces, which tokenizers names by their surface text, so tokens are not stored.

The strings cover what the shared cases do not: decomposed accents (NFC), Hangul jamo, Unicode
whitespace, fullwidth forms (NFKC), letter/number classes outside ASCII, special tokens typed in
the prompt, upper-case special tokens, and truncation with special tokens inside the cut.

Development only (pip install tokenizers); run from the repository root:
    python3 tests/tokenizers/make_extra_cases.py
"""
import json

import tokenizers
from tokenizers import Tokenizer

ROOT = "tests/data/tokenizer"

COMMON = [
    "cafe\u0301 in Zu\u0308rich",                 # decomposed accents
    "\u0301leading combining mark",
    "a\u0323\u0307 dot below and above, q\u0307\u0323",
    "\u1100\u1161\u11a8 hangul jamo \uac00\ub098",
    "non\u00a0breaking\u3000ideographic\u2028line\u2003em space",
    "\uff21\uff22\uff23 fullwidth \uff11\uff12\uff13",
    "superscripts x\u00b2 y\u00b3 \u00bd \u2167 \u0663\u0664 \u00b9\u2070",
    "\u039f\u0394\u039f\u03a3 \u03c3\u03bf\u03c6\u03bf\u03c3 final sigma",
    "\u0130stanbul I\u0307 KELVIN \u212a \u2126",
    "rock'n'roll ''s 'S 'LL O'Neil's",
    "abc123def 4x4 1st 2nd",
    "tab\t\tand   \n\n  many\r\n spaces",
    "under_score__double  --dash ..dots ...",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 zwj family \u200b zero width",
    "\ufb01 ligature \u2460 circled \u3300 square",
    "hello <|endoftext|> world",
    "<|startoftext|>already wrapped<|endoftext|>",
    "<|ENDOFTEXT|> upper case special",
    "The <extra_id_0> walks in <extra_id_1> park",
    "a</s>b <pad> <unk>x<extra_id_99>",
    "<extra_id_0><extra_id_1> <extra_id_100>",
    " ".join(["word"] * 90),
    " ".join(["<extra_id_5> x"] * 20),
    " ".join(["z <|endoftext|>"] * 20),
    "MiXeD CaSe WiTh ÀÉÎÕÜ and ǅ titlecase",
]
LENGTHS = {"t5": [16, 77], "clip": [16, 77]}


def main():
    out = {"info": {"tokenizers": tokenizers.__version__,
                    "made_by": "tests/tokenizers/make_extra_cases.py",
                    "call": "Tokenizer.from_file(tokenizer.json).encode(text) with truncation"
                            " to L and padding to L"}}
    for name in ("t5", "clip"):
        path = "%s/%s/tokenizer.json" % (ROOT, name)
        tok = Tokenizer.from_file(path)
        pad_id = tok.padding["pad_id"]
        pad_token = tok.padding["pad_token"]
        tok.no_padding()
        tok.no_truncation()
        shared = json.load(open("%s/%s/cases.json" % (ROOT, name)))["cases"]
        for c in shared:
            assert tok.encode(c["text"]).ids == c["ids_unpadded"], (name, c["text"])
        cases = []
        for text in COMMON:
            tok.no_padding()
            tok.no_truncation()
            case = {"text": text, "ids_unpadded": tok.encode(text).ids}
            for L in LENGTHS[name]:
                tok.enable_truncation(max_length=L)
                tok.enable_padding(length=L, pad_id=pad_id, pad_token=pad_token)
                e = tok.encode(text)
                case["max_length_%d" % L] = {"input_ids": e.ids, "attention_mask": e.attention_mask}
            cases.append(case)
        out[name] = cases
    with open("%s/extra_cases.json" % ROOT, "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print("wrote", "%s/extra_cases.json" % ROOT)


if __name__ == "__main__":
    main()
